// Every type of the agentos agent protocol and control protocol (syscalls/src/*.rs).
import type { Codec, U64 } from './postcard.js';

export { U64 };
export type AgentId = U64;

export const ABI_VERSION: number;
export const DEFAULT_MAX_FRAME: number;
export const AGENT_FD_ENV: 'AGENTOS_FD';
export const AGENT_ID_ENV: 'AGENTOS_AGENT_ID';
export const LIMITS: Readonly<{
  PATH_MAX: number; NAME_MAX: number; ARGV_MAX_COUNT: number; ARG_MAX: number; ARG_STRLEN_MAX: number;
  ACTION_MAX: number; RESOURCE_MAX: number; PARAMS_JSON_MAX: number; JAIL_LAYERS_MAX: number; SDK_NAME_MAX: number;
}>;

// ---- signal.rs ----
export type Signal = 'SIGINT' | 'SIGKILL' | 'SIGUSR1' | 'SIGTERM' | 'SIGCONT' | 'SIGSTOP' | 'SIGPOLICY' | 'SIGTRUST';
export const Signal: Codec<Signal> & { readonly names: Signal[] };
export const SIGNAL_NUMBERS: Readonly<Record<Signal, number>>;
export function signalMaskable(sig: Signal): boolean;
export function parseSignal(s: string | number): Signal;

// ---- errno.rs ----
export type Errno =
  | { type: 'PermissionDenied'; rule: string; reason: string }
  | { type: 'NotFound'; what: string }
  | { type: 'InvalidArgument'; reason: string }
  | { type: 'RateLimited'; retryAfterMs: U64 }
  | { type: 'ApprovalDenied' }
  | { type: 'ApprovalTimeout' }
  | { type: 'QuotaExceeded'; what: string }
  | { type: 'TooLarge'; size: U64; limit: U64 }
  | { type: 'ProtocolViolation'; reason: string }
  | { type: 'Unsupported'; what: string }
  | { type: 'Internal'; reason: string }
  | { type: 'Busy'; what: string }
  | { type: 'BadDescriptor'; fd: number }
  | { type: 'IsDirectory'; path: string }
  | { type: 'NotDirectory'; path: string }
  | { type: 'AlreadyExists'; path: string }
  | { type: 'TimedOut'; afterMs: U64 }
  | { type: 'Interrupted'; reason: string };
export type ErrnoKind = Errno['type'];
export const Errno: Codec<Errno> & { readonly names: ErrnoKind[] };
export const POSIX_ERRNO: Readonly<Record<ErrnoKind, number>>;

// ---- abi.rs ----
export interface Hello { abi: number; sdk: string }
export interface Limits { maxFrame: number; maxInFlight: number }
export interface Welcome { abi: number; agentId: AgentId; limits: Limits; policyDigest: Uint8Array }
export const Hello: Codec<Hello>;
export const Limits: Codec<Limits>;
export const Welcome: Codec<Welcome>;

export type WriteMode = 'Truncate' | 'Append' | 'CreateNew';
export const WriteMode: Codec<WriteMode> & { readonly names: WriteMode[] };
export type OpenMode = { type: 'Read' } | { type: 'Write'; mode: WriteMode };
export const OpenMode: Codec<OpenMode>;

export type Syscall =
  | { type: 'Read'; path: string; offset: U64; len: U64 | null }
  | { type: 'Write'; path: string; data: Uint8Array; mode: WriteMode }
  | { type: 'Open'; path: string; mode: OpenMode }
  | { type: 'Close'; fd: number }
  | { type: 'List'; path: string }
  | { type: 'Stat'; path: string }
  | { type: 'Unlink'; path: string }
  | { type: 'Exec'; argv: string[]; stdin: Uint8Array; cwd: string | null; timeoutMs: U64 | null }
  | { type: 'Call'; action: string; paramsJson: string }
  | { type: 'Send'; to: AgentId; payload: Uint8Array }
  | { type: 'Recv'; timeoutMs: U64 | null }
  | { type: 'Signal'; target: AgentId; signal: Signal }
  | { type: 'CheckPolicy'; action: string; resource: string }
  | { type: 'Checkpoint' }
  | { type: 'Exit'; code: number }
  | { type: 'ReadFd'; fd: number; len: number }
  | { type: 'WriteFd'; fd: number; data: Uint8Array }
  | { type: 'Rename'; from: string; to: string }
  | { type: 'ListTools' };
export const Syscall: Codec<Syscall> & { readonly names: Syscall['type'][] };
/** `Syscall::name`: `read`, `check_policy`, … by variant. */
export const SYSCALL_NAMES: Readonly<Record<Syscall['type'], string>>;

export type FileKind = 'File' | 'Directory';
export const FileKind: Codec<FileKind>;
export interface DirEntry { name: string; kind: FileKind; size: U64 }
export interface FileStat { kind: FileKind; size: U64; modifiedMs: U64; readOnly: boolean }
export interface ExecOutput {
  /** Exit code, or 128 + signal number when a signal ended it. */
  status: number; stdout: Uint8Array; stderr: Uint8Array; durationMs: U64; truncated: boolean; timedOut: boolean;
}
export interface Message { from: AgentId; seq: U64; payload: Uint8Array }
export interface Decision { allowed: boolean; rule: string; reason: string }
export const DirEntry: Codec<DirEntry>;
export const FileStat: Codec<FileStat>;
export const ExecOutput: Codec<ExecOutput>;
export const Message: Codec<Message>;
export const Decision: Codec<Decision>;
/** One tool of an MCP server, as `ListTools` shows it. */
export interface ToolInfo { server: string; name: string; description: string; inputSchemaJson: string }
export const ToolInfo: Codec<ToolInfo>;

export type Reply =
  | { type: 'Done' }
  | { type: 'Data'; data: Uint8Array }
  | { type: 'Written'; bytes: U64 }
  | { type: 'Opened'; fd: number }
  | { type: 'Entries'; entries: DirEntry[] }
  | { type: 'Stat'; stat: FileStat }
  | { type: 'Exec'; output: ExecOutput }
  | { type: 'CallResult'; resultJson: string }
  | { type: 'Message'; message: Message }
  | { type: 'Decision'; decision: Decision }
  | { type: 'Checkpoint'; number: U64 }
  | { type: 'Tools'; tools: ToolInfo[] };
export const Reply: Codec<Reply> & { readonly names: Reply['type'][] };

export interface Request { id: U64; call: Syscall }
export interface Response { id: U64; result: { ok: Reply } | { err: Errno } }
export const Request: Codec<Request>;
export const Response: Codec<Response>;

export type Event = { type: 'Signal'; signal: Signal; reason: string };
export const Event: Codec<Event>;

export type LayerStatus = { type: 'Active' | 'Partial' | 'Missing'; detail: string };
export interface Layer { name: string; status: LayerStatus }
export interface JailReport { layers: Layer[] }
export const LayerStatus: Codec<LayerStatus>;
export const Layer: Codec<Layer>;
export const JailReport: Codec<JailReport>;

/** A W3C trace context (`traceparent` version 00) as bytes (ABI 4). */
export interface TraceContext { traceId: Uint8Array; spanId: Uint8Array; flags: number }
export const TraceContext: Codec<TraceContext>;
/** Parses `00-<32 hex>-<16 hex>-<2 hex>`; throws a RangeError naming what is wrong. */
export function parseTraceparent(traceparent: string): TraceContext;
/** The `traceparent` header value of a TraceContext. */
export function formatTraceparent(t: TraceContext): string;

export type AgentFrame =
  | { type: 'Hello'; hello: Hello }
  | { type: 'Request'; request: Request }
  | { type: 'JailReport'; report: JailReport }
  | { type: 'SandboxListener' }
  | { type: 'TracedRequest'; request: Request; trace: TraceContext }
  | { type: 'EgressListener' }
  | { type: 'ToolExit'; status: number };
export const AgentFrame: Codec<AgentFrame> & { readonly names: AgentFrame['type'][] };

export type KernelFrame =
  | { type: 'Welcome'; welcome: Welcome }
  | { type: 'Refused'; errno: Errno }
  | { type: 'Response'; response: Response }
  | { type: 'Event'; event: Event };
export const KernelFrame: Codec<KernelFrame> & { readonly names: KernelFrame['type'][] };

// ---- control.rs ----
export type AgentRef = { type: 'Id'; id: AgentId } | { type: 'Name'; name: string };
export interface PolicySource { path: string; text: string }
export interface SpawnRequest {
  name: string | null; policy: PolicySource; workspace: string | null; program: string; args: string[];
  env: [string, string][]; extraReadOnly: string[];
}
export interface ApprovalQuery { limit: number; after: U64 | null; agent: AgentId | null }
export type ControlRequest =
  | { type: 'Status' } | { type: 'Spawn'; spawn: SpawnRequest } | { type: 'Ps' }
  | { type: 'Wait'; agent: AgentRef } | { type: 'Signal'; agent: AgentRef; signal: Signal }
  | { type: 'Logs'; agent: AgentRef; follow: boolean } | { type: 'Shutdown' }
  | { type: 'Inspect'; agent: AgentRef } | { type: 'Approvals' } | { type: 'Approve'; id: U64 }
  | { type: 'Deny'; id: U64 } | { type: 'ReloadPolicy'; agent: AgentRef; policy: PolicySource }
  | { type: 'SpawnRestored'; spawn: SpawnRequest; from: AgentId; checkpoint: U64 | null }
  | { type: 'ApprovalsPage'; query: ApprovalQuery } | { type: 'Forget'; agents: AgentRef[] }
  | { type: 'Prune'; olderThanMs: U64 | null };
export interface PayloadPreview { bytes: U64; head: Uint8Array; blake3: Uint8Array }
export interface ApprovalInfo {
  id: U64; agent: AgentId; action: string; resource: string; ageMs: U64; rule: string;
  agentName: string | null; payload: PayloadPreview | null;
}
export interface ApprovalCount { agent: AgentId; shown: number; matching: number; lastShown: U64 | null }
export interface ApprovalPage { approvals: ApprovalInfo[]; agents: ApprovalCount[]; more: number }
export type AgentState = 'Starting' | 'Running' | 'Stopped' | 'Exited' | 'AwaitingApproval';
export type ExitStatus =
  | { type: 'Code'; code: number } | { type: 'PosixSignal'; signal: number }
  | { type: 'Killed'; signal: Signal; reason: string } | { type: 'SandboxFailed'; reason: string };
export interface AgentCounters {
  syscalls: U64; allowed: U64; denied: U64; signals: U64; parked: U64; violations: U64;
  sandboxDenied: U64; awaitingApproval: U64;
}
export type DenialKind = 'Refused' | 'Allowed' | 'Sandbox';
export interface Denial { kind: DenialKind; action: string; resource: string; rule: string; reason: string; count: U64 }
export interface DenialSummary { top: Denial[]; total: U64 }
export interface AgentUsage { memoryBytes: U64; pids: U64 }
export interface AgentInfo {
  id: AgentId; name: string | null; state: AgentState; pid: number | null; program: string; args: string[];
  startedMs: U64; firstSyscallUs: U64 | null; counters: AgentCounters; exit: ExitStatus | null;
  policyPath: string; policyDigest: Uint8Array; logPath: string; jail: JailReport | null;
  usage: AgentUsage | null; denials: DenialSummary;
}
export interface KernelStatus {
  pid: number; uid: number; version: string; abi: number; stateDir: string; recorderDir: string;
  startedMs: U64; agentsRunning: number; agentsTotal: number; sandbox: Layer[]; logPath: string | null;
  health: string[]; metricsUrl: string | null; otlpEndpoint: string | null;
}
export type ControlErrorKind = 'Failed' | 'Usage' | 'Denied' | 'NotFound';
export interface ControlError { kind: ControlErrorKind; message: string; hint: string }
export type ControlResponse =
  | { type: 'Status'; status: KernelStatus } | { type: 'Spawned'; info: AgentInfo }
  | { type: 'Agents'; agents: AgentInfo[] } | { type: 'Agent'; info: AgentInfo }
  | { type: 'Signaled'; agent: AgentId; signal: Signal } | { type: 'LogChunk'; data: Uint8Array }
  | { type: 'LogEnd' } | { type: 'ShuttingDown' } | { type: 'Error'; error: ControlError }
  | { type: 'Approvals'; approvals: ApprovalInfo[] } | { type: 'Decided'; id: U64; approved: boolean }
  | { type: 'Reloaded'; agent: AgentId; oldDigest: Uint8Array; newDigest: Uint8Array }
  | { type: 'ApprovalsPage'; page: ApprovalPage } | { type: 'Forgotten'; agents: AgentId[] };
export const AgentRef: Codec<AgentRef>;
export const PolicySource: Codec<PolicySource>;
export const SpawnRequest: Codec<SpawnRequest>;
export const ApprovalQuery: Codec<ApprovalQuery>;
export const ControlRequest: Codec<ControlRequest> & { readonly names: ControlRequest['type'][] };
export const PayloadPreview: Codec<PayloadPreview>;
export const ApprovalInfo: Codec<ApprovalInfo>;
export const ApprovalCount: Codec<ApprovalCount>;
export const ApprovalPage: Codec<ApprovalPage>;
export const AgentState: Codec<AgentState> & { readonly names: AgentState[] };
export const ExitStatus: Codec<ExitStatus>;
export const AgentCounters: Codec<AgentCounters>;
export const DenialKind: Codec<DenialKind>;
export const Denial: Codec<Denial>;
export const DenialSummary: Codec<DenialSummary>;
export const AgentUsage: Codec<AgentUsage>;
export const AgentInfo: Codec<AgentInfo>;
export const KernelStatus: Codec<KernelStatus>;
export const ControlErrorKind: Codec<ControlErrorKind>;
export const ControlError: Codec<ControlError>;
export const ControlResponse: Codec<ControlResponse> & { readonly names: ControlResponse['type'][] };

export function encode<T>(codec: Codec<T>, value: T): Uint8Array;
export function decode<T>(codec: Codec<T>, body: Uint8Array): T;
