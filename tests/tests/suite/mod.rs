mod cli;
mod escape;
mod lifecycle;
mod protocol;
mod resources;
mod syscalls;
mod unprivileged;
