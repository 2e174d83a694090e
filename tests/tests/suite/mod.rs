mod cli;
mod escape;
mod lifecycle;
mod policy;
mod protocol;
mod python;
mod syscalls;
mod unprivileged;
