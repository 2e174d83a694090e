import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type {
  AgentId, Decision, DirEntry, ExecOutput, FileStat, Message, OpenMode, Reply, Signal, Syscall, ToolInfo, U64, Welcome,
} from './abi.js';

export const SDK_NAME: string;
export const CHUNK_OVERHEAD: number;
export const SIGNAL_QUEUE_MAX: number;

export interface ConnectOptions {
  /** An already connected socket (default: the descriptor named by AGENTOS_FD). */
  socket?: Socket;
  /** A Unix socket path to connect to (tests, fake kernels). */
  path?: string;
}

export interface SignalEvent { signal: Signal; reason: string }
export type Bytes = Uint8Array | string;

/** Takes the kernel socket named by AGENTOS_FD. Once per process. */
export function agentSocket(): Socket;

/**
 * A connection to the kernel: every method is one syscall and returns a promise; any number
 * may be in flight (at most Welcome's maxInFlight on the wire, the rest queued). Emits
 * `'signal'` (signal, reason) for every kernel signal event and `'close'` (error) once.
 */
export class Client extends EventEmitter {
  static connect(options?: ConnectOptions): Promise<Client>;
  readonly welcome: Welcome;
  readonly agentId: AgentId;
  readonly maxFrame: number;
  readonly maxInFlight: number;
  readonly pendingCalls: number;

  on(event: 'signal', listener: (signal: Signal, reason: string) => void): this;
  on(event: 'close', listener: (error: Error) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: 'signal', listener: (signal: Signal, reason: string) => void): this;
  once(event: 'close', listener: (error: Error) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;

  /** Runs `handler` for every `signal` event; for SIGTERM/SIGINT also keeps the POSIX signal from ending the process. */
  onSignal(signal: Signal, handler: (signal: Signal, reason: string) => unknown): void;
  /** The kernel's signal events from now on; ends with the connection. */
  signals(): AsyncIterableIterator<SignalEvent>;
  /** Closes the connection; waiting calls fail with ConnectionClosed. */
  disconnect(): void;
  /** Announces the exit to the kernel and ends the process. */
  exit(code?: number): Promise<never>;

  /** Sends any syscall; resolves to its Reply. */
  /** Sends later calls in the W3C trace context `traceparent`; `null` stops it. Throws a
   * RangeError for a malformed value. */
  setTraceparent(traceparent: string | null): void;
  syscall(call: Syscall): Promise<Reply>;
  read(path: string): Promise<Uint8Array>;
  readText(path: string): Promise<string>;
  readAt(path: string, offset: U64, len: U64): Promise<Uint8Array>;
  readToEnd(path: string): Promise<Uint8Array>;
  write(path: string, data: Bytes): Promise<U64>;
  append(path: string, data: Bytes): Promise<U64>;
  createNew(path: string, data: Bytes): Promise<U64>;
  open(path: string, mode?: OpenMode): Promise<number>;
  close(fd: number): Promise<void>;
  readFd(fd: number, len: number): Promise<Uint8Array>;
  writeFd(fd: number, data: Bytes): Promise<U64>;
  list(path: string): Promise<DirEntry[]>;
  stat(path: string): Promise<FileStat>;
  unlink(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  exec(argv: string[], options?: { stdin?: Bytes; cwd?: string | null; timeoutMs?: U64 | null }): Promise<ExecOutput>;
  call(action: string, paramsJson?: string): Promise<string>;
  /** The tools of the kernel's MCP servers this agent's policy could let it call. */
  listTools(): Promise<ToolInfo[]>;
  /** Calls MCP tool `tool` of `server` (action `mcp_tool`); resolves to its `CallToolResult`. */
  callTool(server: string, tool: string, args?: Record<string, unknown> | string): Promise<any>;
  send(to: AgentId, payload: Bytes): Promise<void>;
  recv(timeoutMs?: U64 | null): Promise<Message>;
  signal(target: AgentId, signal: Signal): Promise<void>;
  checkPolicy(action: string, resource: string): Promise<Decision>;
  checkpoint(): Promise<U64>;
  announceExit(code: number): Promise<void>;
}

/** Connects to the kernel and does the handshake (see Client.connect). */
export function connect(options?: ConnectOptions): Promise<Client>;
