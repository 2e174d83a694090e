mod cli;
mod escape;
mod lifecycle;
mod protocol;
mod unprivileged;
