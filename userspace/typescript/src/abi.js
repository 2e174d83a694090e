// Every type of the agentos ABI (syscalls/src/{abi,errno,signal,control}.rs) as postcard
// codecs over plain JavaScript values, with the exact bytes of the Rust types.
//
// - A struct is a plain object with camelCase fields (`maxFrame`, `policyDigest`).
// - An enum with data is `{ type: 'Variant', ...fields }`; a newtype variant (`Reply::Data(..)`)
//   names its one field (`{ type: 'Data', data }`), as the Python SDK does.
// - An enum without data is a string: `'SIGTERM'`, `'Append'`, `'Directory'`.
// - `Option<T>` is `T | null`; `Result<T, E>` is `{ ok: T } | { err: E }`;
//   byte strings and digests are `Uint8Array`s.
//
// Variant order is the Rust order: it is the wire tag. Every enum is append-only, so a new
// variant is one more line at the end of its list.

import {
  BOOL, BYTES, I32, STR, U8, U16, U32, U64, array, decode, encode, enumOf, opt, result, seq, struct,
  tuple, unitEnum,
} from './postcard.js';

/** The ABI version this SDK speaks (`syscalls::ABI_VERSION`). */
export const ABI_VERSION = 4;
/** The default limit on a frame body (`frame::DEFAULT_MAX_FRAME`, 16 MiB). */
export const DEFAULT_MAX_FRAME = 16 << 20;
/** The environment variable that names the agent's kernel socket descriptor. */
export const AGENT_FD_ENV = 'AGENTOS_FD';
/** The environment variable that carries the agent's id (informational). */
export const AGENT_ID_ENV = 'AGENTOS_AGENT_ID';

/** The bounds of syscalls/src/limits.rs (not on the wire; the kernel checks them too). */
export const LIMITS = Object.freeze({
  PATH_MAX: 4096,
  NAME_MAX: 255,
  ARGV_MAX_COUNT: 4096,
  ARG_MAX: 2 << 20,
  ARG_STRLEN_MAX: 128 << 10,
  ACTION_MAX: 255,
  RESOURCE_MAX: 4096,
  PARAMS_JSON_MAX: 1 << 20,
  JAIL_LAYERS_MAX: 64,
  SDK_NAME_MAX: 255,
});

const AGENT_ID = U64;
const DIGEST = array(32);

// ---- signal.rs -------------------------------------------------------------------------------

/** An agentos signal, by name, in wire order. */
export const Signal = unitEnum('Signal', [
  'SIGINT', 'SIGKILL', 'SIGUSR1', 'SIGTERM', 'SIGCONT', 'SIGSTOP', 'SIGPOLICY', 'SIGTRUST',
]);

/** Each signal's number (POSIX where POSIX has the signal). */
export const SIGNAL_NUMBERS = Object.freeze({
  SIGINT: 2, SIGKILL: 9, SIGUSR1: 10, SIGTERM: 15, SIGCONT: 18, SIGSTOP: 19, SIGPOLICY: 64, SIGTRUST: 65,
});

/** Whether the policy's `signals:` list may refuse it (SIGKILL, SIGPOLICY, SIGTRUST never). */
export function signalMaskable(sig) {
  return sig !== 'SIGKILL' && sig !== 'SIGPOLICY' && sig !== 'SIGTRUST';
}

/** Accepts `SIGTERM`, `TERM`, `term`, `15` and 15. */
export function parseSignal(s) {
  const text = String(s).trim();
  if (/^[0-9]+$/.test(text)) {
    const n = Number(text);
    const hit = Signal.names.find((name) => SIGNAL_NUMBERS[name] === n);
    if (hit) return hit;
  } else {
    const upper = text.toUpperCase();
    const name = upper.startsWith('SIG') ? upper : `SIG${upper}`;
    if (Signal.names.includes(name)) return name;
  }
  throw new RangeError(`unknown signal \`${s}\` (known: SIGINT 2, SIGKILL 9, SIGUSR1 10, SIGTERM 15, SIGCONT 18, SIGSTOP 19, SIGPOLICY 64, SIGTRUST 65)`);
}

// ---- errno.rs --------------------------------------------------------------------------------

/** Why the kernel refused or failed a syscall (the wire value; the client throws errors.js). */
export const Errno = enumOf('Errno', [
  ['PermissionDenied', [['rule', STR], ['reason', STR]]],
  ['NotFound', [['what', STR]]],
  ['InvalidArgument', [['reason', STR]]],
  ['RateLimited', [['retryAfterMs', U64]]],
  ['ApprovalDenied'],
  ['ApprovalTimeout'],
  ['QuotaExceeded', [['what', STR]]],
  ['TooLarge', [['size', U64], ['limit', U64]]],
  ['ProtocolViolation', [['reason', STR]]],
  ['Unsupported', [['what', STR]]],
  ['Internal', [['reason', STR]]],
  ['Busy', [['what', STR]]],
  ['BadDescriptor', [['fd', U32]]],
  ['IsDirectory', [['path', STR]]],
  ['NotDirectory', [['path', STR]]],
  ['AlreadyExists', [['path', STR]]],
  ['TimedOut', [['afterMs', U64]]],
  ['Interrupted', [['reason', STR]]],
]);

/** `Errno::posix`: the stable POSIX errno of each variant. */
export const POSIX_ERRNO = Object.freeze({
  PermissionDenied: 13, // EACCES
  NotFound: 2, // ENOENT
  InvalidArgument: 22, // EINVAL
  RateLimited: 11, // EAGAIN
  ApprovalDenied: 125, // ECANCELED
  ApprovalTimeout: 110, // ETIMEDOUT
  QuotaExceeded: 122, // EDQUOT
  TooLarge: 27, // EFBIG
  ProtocolViolation: 71, // EPROTO
  Unsupported: 38, // ENOSYS
  Internal: 5, // EIO
  Busy: 16, // EBUSY
  BadDescriptor: 9, // EBADF
  IsDirectory: 21, // EISDIR
  NotDirectory: 20, // ENOTDIR
  AlreadyExists: 17, // EEXIST
  TimedOut: 110, // ETIMEDOUT
  Interrupted: 4, // EINTR
});

// ---- abi.rs ----------------------------------------------------------------------------------

export const Hello = struct('Hello', [['abi', U16], ['sdk', STR]]);
export const Limits = struct('Limits', [['maxFrame', U32], ['maxInFlight', U32]]);
export const Welcome = struct('Welcome', [
  ['abi', U16], ['agentId', AGENT_ID], ['limits', Limits], ['policyDigest', DIGEST],
]);

export const WriteMode = unitEnum('WriteMode', ['Truncate', 'Append', 'CreateNew']);
export const OpenMode = enumOf('OpenMode', [
  ['Read'],
  ['Write', [['mode', WriteMode]]],
]);

/** Every syscall an agent can make, in wire order. */
export const Syscall = enumOf('Syscall', [
  ['Read', [['path', STR], ['offset', U64], ['len', opt(U64)]]],
  ['Write', [['path', STR], ['data', BYTES], ['mode', WriteMode]]],
  ['Open', [['path', STR], ['mode', OpenMode]]],
  ['Close', [['fd', U32]]],
  ['List', [['path', STR]]],
  ['Stat', [['path', STR]]],
  ['Unlink', [['path', STR]]],
  ['Exec', [['argv', seq(STR)], ['stdin', BYTES], ['cwd', opt(STR)], ['timeoutMs', opt(U64)]]],
  ['Call', [['action', STR], ['paramsJson', STR]]],
  ['Send', [['to', AGENT_ID], ['payload', BYTES]]],
  ['Recv', [['timeoutMs', opt(U64)]]],
  ['Signal', [['target', AGENT_ID], ['signal', Signal]]],
  ['CheckPolicy', [['action', STR], ['resource', STR]]],
  ['Checkpoint'],
  ['Exit', [['code', I32]]],
  ['ReadFd', [['fd', U32], ['len', U32]]],
  ['WriteFd', [['fd', U32], ['data', BYTES]]],
  ['Rename', [['from', STR], ['to', STR]]],
  ['ListTools'],
]);

/** `Syscall::name`: the stable snake_case name of each call, by variant. */
export const SYSCALL_NAMES = Object.freeze(Object.fromEntries(
  Syscall.names.map((n) => [n, n.replace(/(?<=[a-z])([A-Z])/g, '_$1').toLowerCase()]),
));

export const FileKind = unitEnum('FileKind', ['File', 'Directory']);
export const DirEntry = struct('DirEntry', [['name', STR], ['kind', FileKind], ['size', U64]]);
export const FileStat = struct('FileStat', [
  ['kind', FileKind], ['size', U64], ['modifiedMs', U64], ['readOnly', BOOL],
]);
export const ExecOutput = struct('ExecOutput', [
  ['status', I32], ['stdout', BYTES], ['stderr', BYTES], ['durationMs', U64], ['truncated', BOOL],
  ['timedOut', BOOL],
]);
export const Message = struct('Message', [['from', AGENT_ID], ['seq', U64], ['payload', BYTES]]);
export const Decision = struct('Decision', [['allowed', BOOL], ['rule', STR], ['reason', STR]]);
/** One tool of an MCP server, as `ListTools` shows it. */
export const ToolInfo = struct('ToolInfo', [
  ['server', STR], ['name', STR], ['description', STR], ['inputSchemaJson', STR],
]);

/** A successful syscall's value. */
export const Reply = enumOf('Reply', [
  ['Done'],
  ['Data', [['data', BYTES]]],
  ['Written', [['bytes', U64]]],
  ['Opened', [['fd', U32]]],
  ['Entries', [['entries', seq(DirEntry)]]],
  ['Stat', [['stat', FileStat]]],
  ['Exec', [['output', ExecOutput]]],
  ['CallResult', [['resultJson', STR]]],
  ['Message', [['message', Message]]],
  ['Decision', [['decision', Decision]]],
  ['Checkpoint', [['number', U64]]],
  ['Tools', [['tools', seq(ToolInfo)]]],
]);

export const Request = struct('Request', [['id', U64], ['call', Syscall]]);
export const Response = struct('Response', [['id', U64], ['result', result(Reply, Errno)]]);

/** Something the kernel tells an agent without being asked. */
export const Event = enumOf('Event', [
  ['Signal', [['signal', Signal], ['reason', STR]]],
]);

export const LayerStatus = enumOf('LayerStatus', [
  ['Active', [['detail', STR]]],
  ['Partial', [['detail', STR]]],
  ['Missing', [['detail', STR]]],
]);
export const Layer = struct('Layer', [['name', STR], ['status', LayerStatus]]);
export const JailReport = struct('JailReport', [['layers', seq(Layer)]]);

/** A W3C trace context (`traceparent` version 00) as bytes: the trace and span a request was
 * made in (ABI 4). */
export const TraceContext = struct('TraceContext', [
  ['traceId', array(16)], ['spanId', array(8)], ['flags', U8],
]);

const HEX = /^[0-9a-f]+$/;

/** Parses a `traceparent` header value, `00-<32 hex>-<16 hex>-<2 hex>` (lower-case hex;
 * all-zero ids are invalid, as the W3C recommendation says). Throws a RangeError naming what
 * is wrong. */
export function parseTraceparent(traceparent) {
  const parts = String(traceparent).trim().split('-');
  if (parts.length !== 4) {
    throw new RangeError(`${JSON.stringify(traceparent)} is not a traceparent: expected 00-<32 hex>-<16 hex>-<2 hex>`);
  }
  const [version, trace, span, flags] = parts;
  if (version !== '00') throw new RangeError(`traceparent version ${JSON.stringify(version)} is not supported (only 00)`);
  const bytes = (s, n, what) => {
    if (s.length !== 2 * n || !HEX.test(s)) {
      throw new RangeError(`traceparent ${what} ${JSON.stringify(s)} is not ${2 * n} lower-case hex digits`);
    }
    return Uint8Array.from({ length: n }, (_, i) => parseInt(s.slice(2 * i, 2 * i + 2), 16));
  };
  const t = { traceId: bytes(trace, 16, 'trace id'), spanId: bytes(span, 8, 'span id'), flags: bytes(flags, 1, 'flags')[0] };
  if (t.traceId.every((b) => b === 0) || t.spanId.every((b) => b === 0)) {
    throw new RangeError('traceparent has an all-zero trace id or span id');
  }
  return t;
}

/** The `traceparent` header value of a TraceContext. */
export function formatTraceparent(t) {
  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `00-${hex(t.traceId)}-${hex(t.spanId)}-${t.flags.toString(16).padStart(2, '0')}`;
}

/** A frame from the agent's side of the socket. `Hello` stays variant 0 forever. */
export const AgentFrame = enumOf('AgentFrame', [
  ['Hello', [['hello', Hello]]],
  ['Request', [['request', Request]]],
  ['JailReport', [['report', JailReport]]],
  // Sent only by the launcher; the SDK never sends it.
  ['SandboxListener'],
  // A request made inside a span of the agent's own trace (ABI 4).
  ['TracedRequest', [['request', Request], ['trace', TraceContext]]],
  // Sent only by the launcher, with the agent's egress proxy listener; the SDK never sends it.
  ['EgressListener'],
  // Sent only by a tool jail's init: the tool's exit status; the SDK never sends it.
  ['ToolExit', [['status', I32]]],
]);

/** A frame from the kernel. */
export const KernelFrame = enumOf('KernelFrame', [
  ['Welcome', [['welcome', Welcome]]],
  ['Refused', [['errno', Errno]]],
  ['Response', [['response', Response]]],
  ['Event', [['event', Event]]],
]);

// ---- control.rs (the operator's control socket) ---------------------------------------------

export const AgentRef = enumOf('AgentRef', [
  ['Id', [['id', AGENT_ID]]],
  ['Name', [['name', STR]]],
]);
export const PolicySource = struct('PolicySource', [['path', STR], ['text', STR]]);
export const SpawnRequest = struct('SpawnRequest', [
  ['name', opt(STR)], ['policy', PolicySource], ['workspace', opt(STR)], ['program', STR],
  ['args', seq(STR)], ['env', seq(tuple(STR, STR))], ['extraReadOnly', seq(STR)],
]);
export const ApprovalQuery = struct('ApprovalQuery', [
  ['limit', U32], ['after', opt(U64)], ['agent', opt(AGENT_ID)],
]);

export const ControlRequest = enumOf('ControlRequest', [
  ['Status'],
  ['Spawn', [['spawn', SpawnRequest]]],
  ['Ps'],
  ['Wait', [['agent', AgentRef]]],
  ['Signal', [['agent', AgentRef], ['signal', Signal]]],
  ['Logs', [['agent', AgentRef], ['follow', BOOL]]],
  ['Shutdown'],
  ['Inspect', [['agent', AgentRef]]],
  ['Approvals'],
  ['Approve', [['id', U64]]],
  ['Deny', [['id', U64]]],
  ['ReloadPolicy', [['agent', AgentRef], ['policy', PolicySource]]],
  ['SpawnRestored', [['spawn', SpawnRequest], ['from', AGENT_ID], ['checkpoint', opt(U64)]]],
  ['ApprovalsPage', [['query', ApprovalQuery]]],
  ['Forget', [['agents', seq(AgentRef)]]],
  ['Prune', [['olderThanMs', opt(U64)]]],
]);

export const PayloadPreview = struct('PayloadPreview', [
  ['bytes', U64], ['head', BYTES], ['blake3', DIGEST],
]);
export const ApprovalInfo = struct('ApprovalInfo', [
  ['id', U64], ['agent', AGENT_ID], ['action', STR], ['resource', STR], ['ageMs', U64],
  ['rule', STR], ['agentName', opt(STR)], ['payload', opt(PayloadPreview)],
]);
export const ApprovalCount = struct('ApprovalCount', [
  ['agent', AGENT_ID], ['shown', U32], ['matching', U32], ['lastShown', opt(U64)],
]);
export const ApprovalPage = struct('ApprovalPage', [
  ['approvals', seq(ApprovalInfo)], ['agents', seq(ApprovalCount)], ['more', U32],
]);

export const AgentState = unitEnum('AgentState', [
  'Starting', 'Running', 'Stopped', 'Exited', 'AwaitingApproval',
]);
export const ExitStatus = enumOf('ExitStatus', [
  ['Code', [['code', I32]]],
  ['PosixSignal', [['signal', I32]]],
  ['Killed', [['signal', Signal], ['reason', STR]]],
  ['SandboxFailed', [['reason', STR]]],
]);
export const AgentCounters = struct('AgentCounters', [
  ['syscalls', U64], ['allowed', U64], ['denied', U64], ['signals', U64], ['parked', U64],
  ['violations', U64], ['sandboxDenied', U64], ['awaitingApproval', U64],
]);
export const DenialKind = unitEnum('DenialKind', ['Refused', 'Allowed', 'Sandbox']);
export const Denial = struct('Denial', [
  ['kind', DenialKind], ['action', STR], ['resource', STR], ['rule', STR], ['reason', STR],
  ['count', U64],
]);
export const DenialSummary = struct('DenialSummary', [['top', seq(Denial)], ['total', U64]]);
export const AgentUsage = struct('AgentUsage', [['memoryBytes', U64], ['pids', U64]]);
export const AgentInfo = struct('AgentInfo', [
  ['id', AGENT_ID], ['name', opt(STR)], ['state', AgentState], ['pid', opt(U32)],
  ['program', STR], ['args', seq(STR)], ['startedMs', U64], ['firstSyscallUs', opt(U64)],
  ['counters', AgentCounters], ['exit', opt(ExitStatus)], ['policyPath', STR],
  ['policyDigest', DIGEST], ['logPath', STR], ['jail', opt(JailReport)],
  ['usage', opt(AgentUsage)], ['denials', DenialSummary],
]);
export const KernelStatus = struct('KernelStatus', [
  ['pid', U32], ['uid', U32], ['version', STR], ['abi', U16], ['stateDir', STR],
  ['recorderDir', STR], ['startedMs', U64], ['agentsRunning', U32], ['agentsTotal', U32],
  ['sandbox', seq(Layer)], ['logPath', opt(STR)], ['health', seq(STR)],
  ['metricsUrl', opt(STR)], ['otlpEndpoint', opt(STR)],
]);
export const ControlErrorKind = unitEnum('ControlErrorKind', ['Failed', 'Usage', 'Denied', 'NotFound']);
export const ControlError = struct('ControlError', [
  ['kind', ControlErrorKind], ['message', STR], ['hint', STR],
]);

export const ControlResponse = enumOf('ControlResponse', [
  ['Status', [['status', KernelStatus]]],
  ['Spawned', [['info', AgentInfo]]],
  ['Agents', [['agents', seq(AgentInfo)]]],
  ['Agent', [['info', AgentInfo]]],
  ['Signaled', [['agent', AGENT_ID], ['signal', Signal]]],
  ['LogChunk', [['data', BYTES]]],
  ['LogEnd'],
  ['ShuttingDown'],
  ['Error', [['error', ControlError]]],
  ['Approvals', [['approvals', seq(ApprovalInfo)]]],
  ['Decided', [['id', U64], ['approved', BOOL]]],
  ['Reloaded', [['agent', AGENT_ID], ['oldDigest', DIGEST], ['newDigest', DIGEST]]],
  ['ApprovalsPage', [['page', ApprovalPage]]],
  ['Forgotten', [['agents', seq(AGENT_ID)]]],
]);

export { decode, encode };
