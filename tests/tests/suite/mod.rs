mod cli;
mod escape;
mod lifecycle;
mod policy;
mod protocol;
mod recorder;
mod syscalls;
mod unprivileged;
