mod cli;
mod escape;
mod lifecycle;
mod policy;
mod protocol;
mod syscalls;
mod unprivileged;
