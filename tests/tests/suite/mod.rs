mod cli;
mod escape;
mod lifecycle;
mod protocol;
mod syscalls;
mod unprivileged;
