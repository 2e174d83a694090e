// agentos, the TypeScript/JavaScript agent SDK: how a Node agent talks to its kernel.
//
//   import { connect } from 'agentos';
//   const client = await connect();
//   await client.write('/mem/working/notes.txt', 'hello');
//   const back = await client.readText('/mem/working/notes.txt');
//
// The agent finds its kernel socket at the descriptor named by AGENTOS_FD, says Hello, and
// from then on every action is a typed syscall. See README.md beside this file.

export { Client, connect, agentSocket, SDK_NAME, CHUNK_OVERHEAD, SIGNAL_QUEUE_MAX } from './client.js';
export * from './errors.js';
export {
  ABI_VERSION, DEFAULT_MAX_FRAME, AGENT_FD_ENV, AGENT_ID_ENV, LIMITS, SIGNAL_NUMBERS, POSIX_ERRNO,
  SYSCALL_NAMES, parseSignal, signalMaskable,
} from './abi.js';
export { DecodeError } from './postcard.js';
export * as abi from './abi.js';
export * as frame from './frame.js';
