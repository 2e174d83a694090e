// The client: one connection to the kernel, any number of calls in flight (at most Welcome's
// `maxInFlight` on the wire, the rest queued here), answers matched to their calls by request
// id, signal events delivered to listeners, handlers and async iterators.

import { EventEmitter } from 'node:events';
import net from 'node:net';

import * as abi from './abi.js';
import { DecodeError } from './postcard.js';
import {
  AgentOSError, ConnectionClosed, NoKernel, ProtocolViolation, Refused, fromErrno,
} from './errors.js';
import { FrameDecoder, decode, encodeFrame } from './frame.js';

/** The SDK's name and version, sent in Hello. */
export const SDK_NAME = 'agentos-typescript/0.1.0';

/** What one answer frame needs beyond its payload: the kernel serves at most
 * `maxFrame - CHUNK_OVERHEAD` bytes of file data per Read/ReadFd answer. */
export const CHUNK_OVERHEAD = 4096;

/** How many signal events an iterator keeps while nobody reads them (oldest dropped). */
export const SIGNAL_QUEUE_MAX = 256;

let socketTaken = false;

/** Takes the kernel socket named by AGENTOS_FD. Once per process. */
export function agentSocket() {
  const raw = process.env[abi.AGENT_FD_ENV];
  if (raw === undefined) {
    throw new NoKernel(`${abi.AGENT_FD_ENV} is not set: run the agent under agentos (agentctl run -- node agent.mjs)`);
  }
  if (!/^[0-9]+$/.test(raw)) throw new NoKernel(`${abi.AGENT_FD_ENV}=${raw} is not a descriptor number`);
  if (socketTaken) throw new NoKernel('this process already connected; share the existing client');
  let sock;
  try {
    sock = new net.Socket({ fd: Number(raw), readable: true, writable: true });
  } catch (e) {
    throw new NoKernel(`descriptor ${raw}: ${e.message}`);
  }
  socketTaken = true;
  return sock;
}

function expect(call, variant, get) {
  return (reply) => {
    if (reply.type !== variant) {
      throw new ProtocolViolation(`${call} answered with ${reply.type}`);
    }
    return get(reply);
  };
}

const asDone = expect('call', 'Done', () => undefined);
const asData = expect('read', 'Data', (r) => r.data);
const asWritten = expect('write', 'Written', (r) => r.bytes);
const asOpened = expect('open', 'Opened', (r) => r.fd);
const asEntries = expect('list', 'Entries', (r) => r.entries);
const asStat = expect('stat', 'Stat', (r) => r.stat);
const asExec = expect('exec', 'Exec', (r) => r.output);
const asCall = expect('call', 'CallResult', (r) => r.resultJson);
const asMessage = expect('recv', 'Message', (r) => r.message);
const asDecision = expect('check_policy', 'Decision', (r) => r.decision);
const asCheckpoint = expect('checkpoint', 'Checkpoint', (r) => r.number);
const asTools = expect('list_tools', 'Tools', (r) => r.tools);
const asToolResult = expect('call_tool', 'CallResult', (r) => JSON.parse(r.resultJson));

const utf8 = new TextEncoder();
function toBytes(what, data) {
  if (typeof data === 'string') return utf8.encode(data);
  if (data instanceof Uint8Array) return data;
  throw new TypeError(`${what}: expected a Uint8Array or a string, got ${data === null ? 'null' : typeof data}`);
}

/** A connection to the kernel. Emits `'signal'` (signal, reason) and `'close'` (error). */
export class Client extends EventEmitter {
  #sock;
  #frames = new FrameDecoder(abi.DEFAULT_MAX_FRAME);
  #nextId = 1;
  #trace = null; // the W3C trace context later calls are sent in (setTraceparent)
  #pending = new Map(); // id → { resolve, reject, decode }
  #queue = []; // frames waiting for an in-flight slot
  #inFlight = 0;
  #closed = null; // the error every later call gets
  #handshake = null; // { resolve, reject } until Welcome
  #handlers = new Map(); // signal → handler
  #iterators = new Set();
  #refd = true; // whether the socket holds the process alive (sockets start so)
  #posixGuards = new Map(); // POSIX signal → the no-op listener that keeps it from ending us

  /** The kernel's Welcome: `{ abi, agentId, limits: { maxFrame, maxInFlight }, policyDigest }`. */
  welcome = null;

  constructor(socket) {
    super();
    this.#sock = socket;
    socket.on('data', (chunk) => this.#onData(chunk));
    socket.on('end', () => this.#fail(this.#frames.pending
      ? new ConnectionClosed(`stream ended inside a frame (${this.#frames.pending} bytes buffered)`)
      : new ConnectionClosed('the kernel closed the connection')));
    socket.on('error', (e) => this.#fail(new ConnectionClosed(`connection to the kernel failed: ${e.message}`)));
    socket.on('close', () => this.#fail(new ConnectionClosed('the kernel closed the connection')));
  }

  /**
   * Connects and does the handshake: over the socket named by AGENTOS_FD, or `options.socket`
   * (a connected net.Socket), or `options.path` (a Unix socket path, for tests).
   */
  static async connect(options = {}) {
    let sock = options.socket;
    if (sock === undefined && options.path !== undefined) {
      sock = net.createConnection(options.path);
    }
    if (sock === undefined) sock = agentSocket();
    const client = new Client(sock);
    await client.#hello();
    return client;
  }

  #hello() {
    return new Promise((resolve, reject) => {
      this.#handshake = { resolve, reject };
      const hello = { type: 'Hello', hello: { abi: abi.ABI_VERSION, sdk: SDK_NAME } };
      this.#sock.write(encodeFrame(abi.AgentFrame, hello));
    });
  }

  /** This agent's id. */
  get agentId() {
    return this.welcome.agentId;
  }

  /** The largest frame body either way, from Welcome. */
  get maxFrame() {
    return this.welcome.limits.maxFrame;
  }

  /** How many requests the kernel serves at once; more wait in this client. */
  get maxInFlight() {
    return Math.max(1, this.welcome.limits.maxInFlight);
  }

  /** Calls sent and not yet answered, and calls waiting for a slot. */
  get pendingCalls() {
    return this.#pending.size;
  }

  // ---- the wire ----

  #onData(chunk) {
    if (this.#closed) return;
    try {
      this.#frames.push(chunk);
      for (let body = this.#frames.next(); body !== null; body = this.#frames.next()) {
        let frame;
        try {
          frame = decode(abi.KernelFrame, body);
        } catch (e) {
          if (e instanceof DecodeError) throw new ProtocolViolation(`the kernel sent a frame that does not decode: ${e.message}`);
          throw e;
        }
        this.#route(frame);
      }
    } catch (e) {
      this.#fail(e instanceof AgentOSError ? e : new ProtocolViolation(String(e && e.message)));
    }
  }

  #route(frame) {
    if (this.#handshake !== null) {
      const { resolve, reject } = this.#handshake;
      this.#handshake = null;
      if (frame.type === 'Welcome') {
        const w = frame.welcome;
        if (w.abi !== abi.ABI_VERSION) {
          const err = new ProtocolViolation(`the kernel speaks ABI ${w.abi}, this SDK ${abi.ABI_VERSION}`);
          reject(err);
          this.#fail(err);
          return;
        }
        this.welcome = w;
        this.#frames.maxFrame = w.limits.maxFrame;
        this.#updateRef();
        resolve(w);
      } else if (frame.type === 'Refused') {
        const err = new Refused(fromErrno(frame.errno));
        reject(err);
        this.#fail(err);
      } else {
        const err = new ProtocolViolation(`expected Welcome, got ${frame.type}`);
        reject(err);
        this.#fail(err);
      }
      return;
    }
    if (frame.type === 'Response') {
      const { id, result } = frame.response;
      const call = this.#pending.get(id);
      if (call === undefined) return; // not ours (or already failed): nothing waits for it
      this.#pending.delete(id);
      this.#inFlight--;
      this.#pump();
      if ('err' in result) {
        call.reject(fromErrno(result.err));
      } else {
        try {
          call.resolve(call.decode(result.ok));
        } catch (e) {
          call.reject(e);
        }
      }
      this.#updateRef();
    } else if (frame.type === 'Event') {
      if (frame.event.type === 'Signal') this.#deliver(frame.event.signal, frame.event.reason);
    } else {
      throw new ProtocolViolation(`unexpected ${frame.type} after the handshake`);
    }
  }

  #pump() {
    while (this.#inFlight < this.maxInFlight && this.#queue.length > 0) {
      this.#inFlight++;
      this.#sock.write(this.#queue.shift());
    }
  }

  #fail(err) {
    if (this.#closed) return;
    this.#closed = err;
    if (this.#handshake !== null) {
      this.#handshake.reject(err);
      this.#handshake = null;
    }
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    this.#queue = [];
    this.#inFlight = 0;
    for (const call of pending) call.reject(err);
    for (const it of this.#iterators) it.end();
    this.#sock.destroy();
    for (const [sig, fn] of this.#posixGuards) process.removeListener(sig, fn);
    this.#posixGuards.clear();
    this.emit('close', err);
  }

  // The socket keeps the process alive only while something waits on it: a call, or an
  // iterator waiting for a signal. Listeners and handlers alone do not (as the Python SDK's
  // daemon threads do not), so an agent ends when its work is done.
  #updateRef() {
    if (this.#closed) return;
    let waiting = this.#pending.size > 0;
    if (!waiting) {
      for (const it of this.#iterators) {
        if (it.waiting()) {
          waiting = true;
          break;
        }
      }
    }
    if (waiting === this.#refd) return;
    this.#refd = waiting;
    if (waiting) this.#sock.ref();
    else this.#sock.unref();
  }

  /** Sends later calls in the W3C trace context `traceparent` (`00-<trace id>-<span id>-<flags>`,
   * e.g. the current span of the agent's own OpenTelemetry tracer): with a kernel that exports
   * traces, its span of each call is a child of that span. `null` stops it. Throws a RangeError
   * for a malformed value. */
  setTraceparent(traceparent) {
    this.#trace = traceparent === null || traceparent === undefined ? null : abi.parseTraceparent(traceparent);
  }

  /** Sends any syscall (`{ type: 'Read', … }`); resolves to its Reply. */
  syscall(call) {
    return this.#invoke(call, (r) => r);
  }

  #invoke(call, decodeReply) {
    if (this.welcome === null) return Promise.reject(new ConnectionClosed('the handshake has not completed'));
    if (this.#closed) return Promise.reject(this.#closed);
    const id = this.#nextId++;
    let bytes;
    try {
      // Checks types, ranges and the frame limit before anything is sent.
      const request = { id, call };
      const frame = this.#trace === null
        ? { type: 'Request', request }
        : { type: 'TracedRequest', request, trace: this.#trace };
      bytes = encodeFrame(abi.AgentFrame, frame, this.maxFrame);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, decode: decodeReply });
      if (this.#inFlight < this.maxInFlight) {
        this.#inFlight++;
        this.#sock.write(bytes);
      } else {
        this.#queue.push(bytes);
      }
      if (this.#pending.size === 1) this.#updateRef();
    });
  }

  // ---- signals ----

  #deliver(signal, reason) {
    this.emit('signal', signal, reason);
    const fn = this.#handlers.get(signal);
    if (fn !== undefined) {
      setImmediate(() => {
        Promise.resolve()
          .then(() => fn(signal, reason))
          .catch((e) => process.stderr.write(`agentos: signal handler for ${signal} threw ${e && e.stack ? e.stack : e}\n`));
      });
    }
    for (const it of this.#iterators) it.push({ signal, reason });
    this.#updateRef();
  }

  /**
   * Runs `handler(signal, reason)` whenever the kernel sends `signal` (`'SIGTERM'`). For
   * SIGTERM and SIGINT it also keeps the POSIX signal that follows the kernel's event from
   * ending the process, so the handler can shut down cleanly.
   */
  onSignal(signal, handler) {
    if (!abi.Signal.names.includes(signal)) {
      throw new TypeError(`signal: expected one of ${abi.Signal.names.join(', ')}, got ${String(signal)}`);
    }
    if (typeof handler !== 'function') throw new TypeError('handler: expected a function (signal, reason)');
    this.#handlers.set(signal, handler);
    if ((signal === 'SIGTERM' || signal === 'SIGINT') && !this.#posixGuards.has(signal)) {
      const guard = () => {};
      process.on(signal, guard);
      this.#posixGuards.set(signal, guard);
    }
  }

  /**
   * The kernel's signal events as an async iterator of `{ signal, reason }`, from now on. It
   * keeps at most SIGNAL_QUEUE_MAX unread events (the oldest are dropped) and ends when the
   * connection does. While it waits for the next event, the process stays alive.
   */
  signals() {
    const queue = [];
    const waiters = []; // next() calls waiting for an event, oldest first
    let done = false;
    const client = this;
    const it = {
      push(ev) {
        const w = waiters.shift();
        if (w) {
          w({ value: ev, done: false });
        } else {
          if (queue.length >= SIGNAL_QUEUE_MAX) queue.shift();
          queue.push(ev);
        }
      },
      end() {
        done = true;
        for (const w of waiters.splice(0)) w({ value: undefined, done: true });
      },
      waiting: () => waiters.length > 0,
    };
    this.#iterators.add(it);
    if (this.#closed) it.end();
    return {
      [Symbol.asyncIterator]() {
        return this;
      },
      next() {
        if (queue.length > 0) return Promise.resolve({ value: queue.shift(), done: false });
        if (done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          waiters.push((r) => {
            resolve(r);
            client.#updateRef();
          });
          client.#updateRef();
        });
      },
      return() {
        client.#iterators.delete(it);
        it.end();
        client.#updateRef();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  /** Closes the connection; calls still waiting fail with ConnectionClosed. */
  disconnect() {
    this.#fail(new ConnectionClosed('the client disconnected'));
  }

  /** Announces the exit to the kernel and ends the process with `code`. */
  async exit(code = 0) {
    try {
      await this.announceExit(code);
    } catch {
      // The kernel may already be gone; the process ends either way.
    }
    process.exit(code);
  }

  // ---- the typed syscalls (the Rust SDK's methods, in camelCase) ----

  /** Reads a whole file (one frame at most; see readToEnd). */
  read(path) {
    return this.#invoke({ type: 'Read', path, offset: 0, len: null }, asData);
  }

  /** Reads a whole file as UTF-8 text. */
  async readText(path) {
    return new TextDecoder().decode(await this.read(path));
  }

  /** Reads up to `len` bytes at `offset`. */
  readAt(path, offset, len) {
    return this.#invoke({ type: 'Read', path, offset, len }, asData);
  }

  /** Reads a whole file of any size, one frame-sized chunk at a time. Not atomic. */
  async readToEnd(path) {
    const chunk = Math.max(this.maxFrame - CHUNK_OVERHEAD, 1);
    const parts = [];
    let size = 0;
    for (;;) {
      const part = await this.readAt(path, size, chunk);
      parts.push(part);
      size += part.length;
      if (part.length < chunk) break;
    }
    const out = new Uint8Array(size);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /** Replaces a file's contents, creating it if needed. Resolves to the bytes written. */
  write(path, data) {
    return this.#write(path, data, 'Truncate');
  }

  /** Appends to a file, creating it if needed. */
  append(path, data) {
    return this.#write(path, data, 'Append');
  }

  /** Creates a new file; AlreadyExists if it exists. */
  createNew(path, data) {
    return this.#write(path, data, 'CreateNew');
  }

  #write(path, data, mode) {
    let bytes;
    try {
      bytes = toBytes('data', data);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#invoke({ type: 'Write', path, data: bytes, mode }, asWritten);
  }

  /** Opens a file for streaming (`{ type: 'Read' }` or `{ type: 'Write', mode: 'Append' }`). */
  open(path, mode = { type: 'Read' }) {
    return this.#invoke({ type: 'Open', path, mode }, asOpened);
  }

  /** Closes a descriptor from open(). */
  close(fd) {
    return this.#invoke({ type: 'Close', fd }, asDone);
  }

  /** Reads up to `len` bytes from an open descriptor. */
  readFd(fd, len) {
    return this.#invoke({ type: 'ReadFd', fd, len }, asData);
  }

  /** Writes to an open descriptor. */
  writeFd(fd, data) {
    let bytes;
    try {
      bytes = toBytes('data', data);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#invoke({ type: 'WriteFd', fd, data: bytes }, asWritten);
  }

  /** Lists a directory. */
  list(path) {
    return this.#invoke({ type: 'List', path }, asEntries);
  }

  /** Describes a path. */
  stat(path) {
    return this.#invoke({ type: 'Stat', path }, asStat);
  }

  /** Removes a file. */
  unlink(path) {
    return this.#invoke({ type: 'Unlink', path }, asDone);
  }

  /** Moves the file at `from` to `to` within one mount. Judged on both paths. */
  rename(from, to) {
    return this.#invoke({ type: 'Rename', from, to }, asDone);
  }

  /** Runs a tool in its own sandbox (action `code_execution`). */
  exec(argv, options = {}) {
    if (!Array.isArray(argv)) return Promise.reject(new TypeError('argv: expected an array of strings'));
    let stdin;
    try {
      stdin = toBytes('stdin', options.stdin ?? new Uint8Array());
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#invoke({
      type: 'Exec', argv, stdin, cwd: options.cwd ?? null, timeoutMs: options.timeoutMs ?? null,
    }, asExec);
  }

  /** Performs a named policy action (`api_call`, …) with JSON params; resolves to JSON. */
  call(action, paramsJson = '{}') {
    return this.#invoke({ type: 'Call', action, paramsJson }, asCall);
  }

  /** The tools of the kernel's MCP servers this agent's policy could let it call. */
  listTools() {
    return this.#invoke({ type: 'ListTools' }, asTools);
  }

  /**
   * Calls MCP tool `tool` of `server` with `args` (an object, or its JSON text): action
   * `mcp_tool` on `SERVER/TOOL ARGS`. Resolves to the tool's result (an MCP `CallToolResult`:
   * `content`, `isError`, …) as an object.
   */
  callTool(server, tool, args = {}) {
    if (typeof server !== 'string' || typeof tool !== 'string' || server.includes('/') || tool.includes('/')) {
      return Promise.reject(new TypeError('server and tool: expected names without `/`'));
    }
    let paramsJson;
    if (typeof args === 'string') paramsJson = args;
    else if (args !== null && typeof args === 'object' && !Array.isArray(args)) paramsJson = JSON.stringify(args);
    else return Promise.reject(new TypeError('args: expected an object or its JSON text'));
    return this.#invoke({ type: 'Call', action: `${server}/${tool}`, paramsJson }, asToolResult);
  }

  /** Sends a message to another agent's inbox; Busy when it is full. */
  send(to, payload) {
    let bytes;
    try {
      bytes = toBytes('payload', payload);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#invoke({ type: 'Send', to, payload: bytes }, asDone);
  }

  /** Takes the oldest message from this agent's inbox, waiting up to `timeoutMs` (null: no limit). */
  recv(timeoutMs = null) {
    return this.#invoke({ type: 'Recv', timeoutMs }, asMessage);
  }

  /** Sends an agentos signal (`'SIGUSR1'`) to another agent. */
  signal(target, signal) {
    return this.#invoke({ type: 'Signal', target, signal }, asDone);
  }

  /** Asks how the policy would decide an action. Never a violation. */
  checkPolicy(action, resource) {
    return this.#invoke({ type: 'CheckPolicy', action, resource }, asDecision);
  }

  /** Snapshots working memory; resolves to the checkpoint's number. */
  checkpoint() {
    return this.#invoke({ type: 'Checkpoint' }, asCheckpoint);
  }

  /** Tells the kernel the agent is exiting with `code` (the process still has to exit). */
  announceExit(code) {
    return this.#invoke({ type: 'Exit', code }, asDone);
  }
}

/** Connects to the kernel (see Client.connect). */
export function connect(options) {
  return Client.connect(options);
}
