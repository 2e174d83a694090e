export { Client, connect, agentSocket, SDK_NAME, CHUNK_OVERHEAD, SIGNAL_QUEUE_MAX } from './client.js';
export type { ConnectOptions, SignalEvent, Bytes } from './client.js';
export * from './errors.js';
export {
  ABI_VERSION, DEFAULT_MAX_FRAME, AGENT_FD_ENV, AGENT_ID_ENV, LIMITS, SIGNAL_NUMBERS, POSIX_ERRNO,
  SYSCALL_NAMES, parseSignal, signalMaskable,
} from './abi.js';
export type {
  AgentId, Decision, DirEntry, Errno, ExecOutput, FileKind, FileStat, Message, OpenMode, Reply, Signal,
  Syscall, U64, Welcome, WriteMode,
} from './abi.js';
export { DecodeError } from './postcard.js';
export * as abi from './abi.js';
export * as frame from './frame.js';
