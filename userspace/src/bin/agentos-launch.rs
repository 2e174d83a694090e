//! `agentos-launch`: the sandbox launcher the kernel execs for every agent. All logic lives in
//! [`agentos_userspace::launch`]; see its docs for the process model.

fn main() {
    agentos_userspace::launch::main_entry()
}
