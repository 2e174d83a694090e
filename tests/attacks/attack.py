"""The Python attack agent: `python3 -I attack.py NAME [ARG]`.

One escape attempt from inside the jail, reported as one line on stdout, like the Rust attack
agent (agentos_tests::attack): `attack NAME: blocked ERRNO` or `attack NAME: ESCAPED what`.
Only the standard library (ctypes for the raw calls).
"""

import ctypes
import errno
import os
import socket
import sys

libc = ctypes.CDLL(None, use_errno=True)


def blocked(name, err):
    print(f"attack {name}: blocked {errno.errorcode.get(err, err)}", flush=True)
    return 0


def escaped(name, what):
    print(f"attack {name}: ESCAPED {what}", flush=True)
    return 1


def ccall(name, rc):
    if rc < 0:
        return blocked(name, ctypes.get_errno())
    return escaped(name, f"returned {rc}")


def attack(name, arg):
    if name == "shadow":
        try:
            with open("/etc/shadow", "rb") as f:
                return escaped(name, f"read {len(f.read())} bytes")
        except OSError as e:
            return blocked(name, e.errno)
    if name == "write-outside":
        try:
            with open("/usr/agentos-escape", "wb") as f:
                f.write(b"x")
            return escaped(name, "wrote /usr/agentos-escape")
        except OSError as e:
            return blocked(name, e.errno)
    # Path writes outside scratch (the legacy mkdir/rmdir/chown entry points, as Python
    # calls them): the read-only runtime, and a file the agent's root hides. The chown keeps
    # owner and group (-1): harmless even where the jail failed.
    path_writes = {
        "mkdir-outside": lambda: os.mkdir("/usr/agentos-escape-dir"),
        "rmdir-runtime": lambda: os.rmdir("/usr/share"),
        "chown-hidden": lambda: os.chown("/etc/shadow", -1, -1),
    }
    if name in path_writes:
        try:
            path_writes[name]()
            return escaped(name, f"{name} worked")
        except OSError as e:
            return blocked(name, e.errno)
    if name in ("tcp", "udp-dns"):
        kind = socket.SOCK_STREAM if name == "tcp" else socket.SOCK_DGRAM
        try:
            s = socket.socket(socket.AF_INET, kind)
        except OSError as e:
            return blocked(name, e.errno)
        # Never send real traffic: reaching this line is the escape.
        s.close()
        return escaped(name, "created an AF_INET socket")
    if name == "kill":
        try:
            os.kill(int(arg or "1"), 9)
            return escaped(name, f"signalled pid {arg}")
        except OSError as e:
            return blocked(name, e.errno)
    if name == "connect":
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(arg)
            return escaped(name, f"connected to {arg}")
        except OSError as e:
            return blocked(name, e.errno)
    if name == "ptrace":
        PTRACE_ATTACH = 16
        libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        return ccall(name, libc.ptrace(PTRACE_ATTACH, int(arg or "1"), None, None))
    if name == "mount":
        return ccall(name, libc.mount(b"none", b"/usr", b"tmpfs", 0, None))
    if name == "unshare-user":
        CLONE_NEWUSER = 0x10000000
        return ccall(name, libc.unshare(CLONE_NEWUSER))
    if name == "fork-bomb":
        n = 0
        while True:
            try:
                pid = os.fork()
            except OSError as e:
                print(f"forked {n}", flush=True)
                return blocked(name, e.errno)
            if pid == 0:
                # The children wait to be killed with the agent's namespace.
                while True:
                    os.pause()
            n += 1
            if n > 100000:
                return escaped(name, f"{n} processes")
    # Setuid/setgid modes and device nodes in the agent's own scratch (the working directory).
    if name in ("chmod-setuid", "chmod-setgid"):
        with open("plain", "w") as f:
            f.write("#!/bin/sh\n")
        try:
            os.chmod("plain", 0o4755 if name == "chmod-setuid" else 0o2755)
        except OSError as e:
            return blocked(name, e.errno)
        return escaped(name, f"mode {os.stat('plain').st_mode:o}")
    if name == "open-setuid":
        try:
            fd = os.open("created", os.O_CREAT | os.O_WRONLY, 0o4755)
        except OSError as e:
            return blocked(name, e.errno)
        os.close(fd)
        return escaped(name, f"mode {os.stat('created').st_mode:o}")
    if name == "mknod-char":
        import stat

        try:
            os.mknod("mem", 0o666 | stat.S_IFCHR, os.makedev(1, 1))
        except OSError as e:
            return blocked(name, e.errno)
        return escaped(name, "made a character device")
    print(f"attack {name}: unknown", flush=True)
    return 64


if __name__ == "__main__":
    sys.exit(attack(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
