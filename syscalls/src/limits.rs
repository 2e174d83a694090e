//! The kernel's bounds on agent-controlled sizes, in one place (plain constants: they are not
//! on the wire, so changing one is not an ABI change; SDKs may check them early for a clearer
//! error, the kernel checks them before any work starts).
//!
//! POSIX-shaped where POSIX has a limit:
//!
//! | constant | value | POSIX analogue | bounds |
//! |---|---|---|---|
//! | [`PATH_MAX`] | 4096 bytes | `PATH_MAX` | every path an agent names (file calls, both of a `Rename`'s, `Exec`'s `cwd`, `CheckPolicy` file resources) |
//! | [`NAME_MAX`] | 255 bytes | `NAME_MAX` | every component of such a path |
//! | [`ARGV_MAX_COUNT`] | 4096 | — | the number of `Exec` arguments (refused while decoding) |
//! | [`ARG_MAX`] | 2 MiB | `ARG_MAX` | the sum of the `Exec` arguments' lengths (+1 each, for the NUL) |
//! | [`ARG_STRLEN_MAX`] | 128 KiB | Linux `MAX_ARG_STRLEN` | one `Exec` argument |
//! | [`ACTION_MAX`] | 255 bytes | — | a policy action name (`Call`, `CheckPolicy`) |
//! | [`RESOURCE_MAX`] | 4096 bytes | — | a `CheckPolicy` resource |
//! | [`PARAMS_JSON_MAX`] | 1 MiB | — | a `Call`'s `params_json` |
//! | [`JAIL_LAYERS_MAX`] | 64 | — | the layers of a `JailReport` (refused while decoding) |
//! | [`SDK_NAME_MAX`] | 255 bytes | — | `Hello.sdk` (a longer one is a protocol violation) |
//! | [`TOOLS_MAX`] | 1024 | — | the tools one `ListTools` answer lists (the kernel keeps the first) |
//! | [`TOOL_NAME_MAX`] | 128 bytes | — | an MCP tool's name (longer ones are not listed nor callable) |
//! | [`TOOL_DESCRIPTION_MAX`] | 4 KiB | — | a tool's description in `ListTools` (cut) |
//! | [`TOOL_SCHEMA_MAX`] | 64 KiB | — | a tool's input schema in `ListTools` (a larger one is replaced by `{}`) |
//!
//! Everything else an agent sends is bounded by the frame limit
//! ([`crate::frame::DEFAULT_MAX_FRAME`], announced in `Welcome`): `Write`/`WriteFd` data,
//! `Exec` stdin, `Send` payloads (and the receiving inbox's byte limit). A path over its
//! limit is refused `InvalidArgument` (EINVAL: the ABI has no ENAMETOOLONG; the message names
//! the limit); a byte string over its limit `TooLarge` (EFBIG); a count over its limit
//! `InvalidArgument`, or a protocol violation when the frame cannot even be decoded
//! ([`ARGV_MAX_COUNT`], [`JAIL_LAYERS_MAX`]: decoding stops before the elements are
//! allocated).

/// The longest path, in bytes, as written by the agent (before normalization).
pub const PATH_MAX: usize = 4096;

/// The longest path component, in bytes.
pub const NAME_MAX: usize = 255;

/// The most arguments an `Exec` may carry (argv\[0\] included). Checked while the frame is
/// decoded, before the arguments are allocated.
pub const ARGV_MAX_COUNT: usize = 4096;

/// The most bytes the arguments of one `Exec` may hold together, counting one NUL per
/// argument as `execve` does.
pub const ARG_MAX: usize = 2 << 20;

/// The longest single `Exec` argument, in bytes.
pub const ARG_STRLEN_MAX: usize = 128 << 10;

/// The longest policy action name (`Call`'s and `CheckPolicy`'s `action`), in bytes.
pub const ACTION_MAX: usize = 255;

/// The longest `CheckPolicy` resource, in bytes.
pub const RESOURCE_MAX: usize = 4096;

/// The longest `Call` `params_json`, in bytes.
pub const PARAMS_JSON_MAX: usize = 1 << 20;

/// The most layers a `JailReport` may list. Checked while the frame is decoded.
pub const JAIL_LAYERS_MAX: usize = 64;

/// The longest SDK name a `Hello` may carry, in bytes.
pub const SDK_NAME_MAX: usize = 255;

/// The most tools one `ListTools` answer lists (over every server).
pub const TOOLS_MAX: usize = 1024;

/// The longest MCP tool name the kernel lists or calls, in bytes.
pub const TOOL_NAME_MAX: usize = 128;

/// The longest tool description a `ListTools` answer carries, in bytes (cut at a char
/// boundary).
pub const TOOL_DESCRIPTION_MAX: usize = 4 << 10;

/// The longest input schema (JSON text) a `ListTools` answer carries, in bytes.
pub const TOOL_SCHEMA_MAX: usize = 64 << 10;
