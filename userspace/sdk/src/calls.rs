//! One constructor per syscall: the request to send and how to read the reply. Shared by the
//! blocking and the async client.

use agentos_syscalls::{
    AgentId, Decision, DirEntry, ExecOutput, FileStat, Message, OpenMode, Reply, Signal, Syscall,
    ToolInfo, WriteMode,
};

use super::SdkError;

/// A syscall paired with the reader of its reply.
pub(crate) struct Call<T> {
    pub call: Syscall,
    pub decode: fn(Reply) -> Result<T, SdkError>,
}

fn mismatch(call: &str, reply: &Reply) -> SdkError {
    SdkError::Protocol(format!("{call} answered with {reply:?}"))
}

macro_rules! reply_reader {
    ($name:ident, $ty:ty, $call:literal, $pat:pat => $val:expr) => {
        fn $name(reply: Reply) -> Result<$ty, SdkError> {
            match reply {
                $pat => Ok($val),
                other => Err(mismatch($call, &other)),
            }
        }
    };
}

reply_reader!(done, (), "call", Reply::Done => ());
reply_reader!(data, Vec<u8>, "read", Reply::Data(d) => d);
reply_reader!(written, u64, "write", Reply::Written { bytes } => bytes);
reply_reader!(opened, u32, "open", Reply::Opened { fd } => fd);
reply_reader!(entries, Vec<DirEntry>, "list", Reply::Entries(e) => e);
reply_reader!(stat, FileStat, "stat", Reply::Stat(s) => s);
reply_reader!(exec_output, ExecOutput, "exec", Reply::Exec(o) => o);
reply_reader!(call_result, String, "call", Reply::CallResult { result_json } => result_json);
reply_reader!(message, Message, "recv", Reply::Message(m) => m);
reply_reader!(decision, Decision, "check_policy", Reply::Decision(d) => d);
reply_reader!(checkpoint_number, u64, "checkpoint", Reply::Checkpoint { number } => number);
reply_reader!(tools, Vec<ToolInfo>, "list_tools", Reply::Tools(t) => t);

pub(crate) fn read(path: &str, offset: u64, len: Option<u64>) -> Call<Vec<u8>> {
    Call {
        call: Syscall::Read {
            path: path.into(),
            offset,
            len,
        },
        decode: data,
    }
}

pub(crate) fn write(path: &str, bytes: &[u8], mode: WriteMode) -> Call<u64> {
    Call {
        call: Syscall::Write {
            path: path.into(),
            data: bytes.to_vec(),
            mode,
        },
        decode: written,
    }
}

pub(crate) fn open(path: &str, mode: OpenMode) -> Call<u32> {
    Call {
        call: Syscall::Open {
            path: path.into(),
            mode,
        },
        decode: opened,
    }
}

pub(crate) fn close(fd: u32) -> Call<()> {
    Call {
        call: Syscall::Close { fd },
        decode: done,
    }
}

pub(crate) fn read_fd(fd: u32, len: u32) -> Call<Vec<u8>> {
    Call {
        call: Syscall::ReadFd { fd, len },
        decode: data,
    }
}

pub(crate) fn write_fd(fd: u32, bytes: &[u8]) -> Call<u64> {
    Call {
        call: Syscall::WriteFd {
            fd,
            data: bytes.to_vec(),
        },
        decode: written,
    }
}

pub(crate) fn list(path: &str) -> Call<Vec<DirEntry>> {
    Call {
        call: Syscall::List { path: path.into() },
        decode: entries,
    }
}

pub(crate) fn stat_path(path: &str) -> Call<FileStat> {
    Call {
        call: Syscall::Stat { path: path.into() },
        decode: stat,
    }
}

pub(crate) fn unlink(path: &str) -> Call<()> {
    Call {
        call: Syscall::Unlink { path: path.into() },
        decode: done,
    }
}

pub(crate) fn rename(from: &str, to: &str) -> Call<()> {
    Call {
        call: Syscall::Rename {
            from: from.into(),
            to: to.into(),
        },
        decode: done,
    }
}

pub(crate) fn exec(
    argv: &[&str],
    stdin: &[u8],
    cwd: Option<&str>,
    timeout_ms: Option<u64>,
) -> Call<ExecOutput> {
    Call {
        call: Syscall::Exec {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            stdin: stdin.to_vec(),
            cwd: cwd.map(str::to_string),
            timeout_ms,
        },
        decode: exec_output,
    }
}

pub(crate) fn call(action: &str, params_json: &str) -> Call<String> {
    Call {
        call: Syscall::Call {
            action: action.into(),
            params_json: params_json.into(),
        },
        decode: call_result,
    }
}

pub(crate) fn send(to: AgentId, payload: &[u8]) -> Call<()> {
    Call {
        call: Syscall::Send {
            to,
            payload: payload.to_vec(),
        },
        decode: done,
    }
}

pub(crate) fn recv(timeout_ms: Option<u64>) -> Call<Message> {
    Call {
        call: Syscall::Recv { timeout_ms },
        decode: message,
    }
}

pub(crate) fn signal(target: AgentId, signal: Signal) -> Call<()> {
    Call {
        call: Syscall::Signal { target, signal },
        decode: done,
    }
}

pub(crate) fn check_policy(action: &str, resource: &str) -> Call<Decision> {
    Call {
        call: Syscall::CheckPolicy {
            action: action.into(),
            resource: resource.into(),
        },
        decode: decision,
    }
}

pub(crate) fn checkpoint() -> Call<u64> {
    Call {
        call: Syscall::Checkpoint,
        decode: checkpoint_number,
    }
}

pub(crate) fn list_tools() -> Call<Vec<ToolInfo>> {
    Call {
        call: Syscall::ListTools,
        decode: tools,
    }
}

/// The `Call` action of an MCP tool: `SERVER/TOOL`.
pub(crate) fn tool_action(server: &str, tool: &str) -> String {
    format!("{server}/{tool}")
}

pub(crate) fn exit(code: i32) -> Call<()> {
    Call {
        call: Syscall::Exit { code },
        decode: done,
    }
}

/// Defines the typed methods of a client once, for both flavours. `$($aw)*` is `.await` for
/// the async client and nothing for the blocking one.
macro_rules! typed_methods {
    ($($async_kw:ident)?; $($aw:tt)*) => {
        /// Reads a whole file.
        pub $($async_kw)? fn read(&self, path: &str) -> Result<Vec<u8>, SdkError> {
            self.invoke(calls::read(path, 0, None))$($aw)*
        }
        /// Reads a whole file of any size, one frame-sized chunk at a time (`Read` by
        /// offset and length: a one-shot `read` of a file larger than one frame is refused
        /// with `TooLarge`). Not atomic: a file changed meanwhile may be read torn.
        pub $($async_kw)? fn read_to_end(&self, path: &str) -> Result<Vec<u8>, SdkError> {
            let chunk = u64::from(self.welcome().limits.max_frame.saturating_sub(super::CHUNK_OVERHEAD).max(1));
            let mut out = Vec::new();
            loop {
                let part = self.invoke(calls::read(path, out.len() as u64, Some(chunk)))$($aw)*?;
                let n = part.len() as u64;
                out.extend_from_slice(&part);
                if n < chunk {
                    return Ok(out);
                }
            }
        }
        /// Reads up to `len` bytes at `offset`.
        pub $($async_kw)? fn read_at(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>, SdkError> {
            self.invoke(calls::read(path, offset, Some(len)))$($aw)*
        }
        /// Replaces a file's contents, creating it if needed. Returns the bytes written.
        pub $($async_kw)? fn write(&self, path: &str, data: &[u8]) -> Result<u64, SdkError> {
            self.invoke(calls::write(path, data, WriteMode::Truncate))$($aw)*
        }
        /// Appends to a file, creating it if needed.
        pub $($async_kw)? fn append(&self, path: &str, data: &[u8]) -> Result<u64, SdkError> {
            self.invoke(calls::write(path, data, WriteMode::Append))$($aw)*
        }
        /// Creates a new file; `AlreadyExists` if it exists.
        pub $($async_kw)? fn create_new(&self, path: &str, data: &[u8]) -> Result<u64, SdkError> {
            self.invoke(calls::write(path, data, WriteMode::CreateNew))$($aw)*
        }
        /// Opens a file for streaming.
        pub $($async_kw)? fn open(&self, path: &str, mode: OpenMode) -> Result<u32, SdkError> {
            self.invoke(calls::open(path, mode))$($aw)*
        }
        /// Closes a descriptor from [`Self::open`].
        pub $($async_kw)? fn close(&self, fd: u32) -> Result<(), SdkError> {
            self.invoke(calls::close(fd))$($aw)*
        }
        /// Reads up to `len` bytes from an open descriptor.
        pub $($async_kw)? fn read_fd(&self, fd: u32, len: u32) -> Result<Vec<u8>, SdkError> {
            self.invoke(calls::read_fd(fd, len))$($aw)*
        }
        /// Writes to an open descriptor.
        pub $($async_kw)? fn write_fd(&self, fd: u32, data: &[u8]) -> Result<u64, SdkError> {
            self.invoke(calls::write_fd(fd, data))$($aw)*
        }
        /// Lists a directory.
        pub $($async_kw)? fn list(&self, path: &str) -> Result<Vec<DirEntry>, SdkError> {
            self.invoke(calls::list(path))$($aw)*
        }
        /// Describes a path.
        pub $($async_kw)? fn stat(&self, path: &str) -> Result<FileStat, SdkError> {
            self.invoke(calls::stat_path(path))$($aw)*
        }
        /// Removes a file.
        pub $($async_kw)? fn unlink(&self, path: &str) -> Result<(), SdkError> {
            self.invoke(calls::unlink(path))$($aw)*
        }
        /// Moves the file at `from` to `to` within one mount (replacing a file at `to`).
        /// Action `file_write`, judged on both paths: refused when the policy denies either.
        pub $($async_kw)? fn rename(&self, from: &str, to: &str) -> Result<(), SdkError> {
            self.invoke(calls::rename(from, to))$($aw)*
        }
        /// Runs a tool in its own sandbox.
        pub $($async_kw)? fn exec(&self, argv: &[&str], stdin: &[u8], cwd: Option<&str>, timeout_ms: Option<u64>) -> Result<ExecOutput, SdkError> {
            self.invoke(calls::exec(argv, stdin, cwd, timeout_ms))$($aw)*
        }
        /// Performs a named policy action (`api_call`, `database_query`, …) with JSON params.
        pub $($async_kw)? fn call(&self, action: &str, params_json: &str) -> Result<String, SdkError> {
            self.invoke(calls::call(action, params_json))$($aw)*
        }
        /// The tools of the kernel's MCP servers this agent's policy could let it call.
        pub $($async_kw)? fn list_tools(&self) -> Result<Vec<agentos_syscalls::ToolInfo>, SdkError> {
            self.invoke(calls::list_tools())$($aw)*
        }
        /// Calls the MCP tool `tool` of server `server` with `args_json` (a JSON object):
        /// action `mcp_tool` on `SERVER/TOOL ARGS`. Returns the tool's result (an MCP
        /// `CallToolResult`) as JSON.
        pub $($async_kw)? fn call_tool(&self, server: &str, tool: &str, args_json: &str) -> Result<String, SdkError> {
            self.invoke(calls::call(&calls::tool_action(server, tool), args_json))$($aw)*
        }
        /// Sends a message to another agent's inbox (action `ipc_send`, its `peers` naming the
        /// target by id or name). A full inbox answers `Busy` (retry later); an unknown or
        /// ended agent `NotFound`.
        pub $($async_kw)? fn send(&self, to: AgentId, payload: &[u8]) -> Result<(), SdkError> {
            self.invoke(calls::send(to, payload))$($aw)*
        }
        /// Takes the oldest message from this agent's inbox, waiting up to `timeout_ms`
        /// (`Some(0)` polls, `None` waits until one arrives); a timeout answers `TimedOut`.
        pub $($async_kw)? fn recv(&self, timeout_ms: Option<u64>) -> Result<Message, SdkError> {
            self.invoke(calls::recv(timeout_ms))$($aw)*
        }
        /// Sends a signal to another agent.
        pub $($async_kw)? fn signal(&self, target: AgentId, signal: Signal) -> Result<(), SdkError> {
            self.invoke(calls::signal(target, signal))$($aw)*
        }
        /// Asks how the policy would decide an action. Never a violation.
        pub $($async_kw)? fn check_policy(&self, action: &str, resource: &str) -> Result<Decision, SdkError> {
            self.invoke(calls::check_policy(action, resource))$($aw)*
        }
        /// Snapshots working memory; returns the checkpoint's number.
        pub $($async_kw)? fn checkpoint(&self) -> Result<u64, SdkError> {
            self.invoke(calls::checkpoint())$($aw)*
        }
        /// Tells the kernel the agent is exiting with `code` (the process still has to exit).
        pub $($async_kw)? fn announce_exit(&self, code: i32) -> Result<(), SdkError> {
            self.invoke(calls::exit(code))$($aw)*
        }
    };
}
pub(crate) use typed_methods;
