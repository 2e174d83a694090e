mod cli;
mod lifecycle;
mod protocol;
mod unprivileged;
