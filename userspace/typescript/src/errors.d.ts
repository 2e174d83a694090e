import type { Errno, ErrnoKind, U64 } from './abi.js';

/** Base of every agentos error. `errno` is the stable POSIX number; `wire` the kernel's Errno. */
export class AgentOSError extends Error {
  readonly errno: number;
  wire: Errno | null;
  readonly kind: string;
}
/** The policy refused the call; parent of ApprovalDenied and ApprovalTimeout. */
export class PermissionDenied extends AgentOSError {
  constructor(rule: string, reason: string);
  /** The deciding rule's id with `file:line`; empty for a default deny. */
  readonly rule: string;
  readonly reason: string;
}
export class ApprovalDenied extends PermissionDenied { constructor(); }
export class ApprovalTimeout extends PermissionDenied { constructor(); }
export class NotFound extends AgentOSError { constructor(what: string); readonly what: string }
export class InvalidArgument extends AgentOSError { constructor(reason: string); readonly reason: string }
/** A `rate_limit` refused the call; retry after `retryAfterMs`. */
export class RateLimited extends AgentOSError { constructor(retryAfterMs: U64); readonly retryAfterMs: U64 }
export class QuotaExceeded extends AgentOSError { constructor(what: string); readonly what: string }
export class TooLarge extends AgentOSError { constructor(size: U64, limit: U64); readonly size: U64; readonly limit: U64 }
export class ProtocolViolation extends AgentOSError { constructor(reason: string); readonly reason: string }
export class Unsupported extends AgentOSError { constructor(what: string); readonly what: string }
export class Internal extends AgentOSError { constructor(reason: string); readonly reason: string }
export class Busy extends AgentOSError { constructor(what: string); readonly what: string }
export class BadDescriptor extends AgentOSError { constructor(fd: number); readonly fd: number }
export class IsDirectory extends AgentOSError { constructor(path: string); readonly path: string }
export class NotDirectory extends AgentOSError { constructor(path: string); readonly path: string }
export class AlreadyExists extends AgentOSError { constructor(path: string); readonly path: string }
export class TimedOut extends AgentOSError { constructor(afterMs: U64); readonly afterMs: U64 }
export class Interrupted extends AgentOSError { constructor(reason: string); readonly reason: string }
/** AGENTOS_FD is missing or unusable: the program is not running under agentos. */
export class NoKernel extends AgentOSError { constructor(message: string); }
/** The kernel closed the connection. */
export class ConnectionClosed extends AgentOSError { constructor(message: string); }
/** The kernel refused the handshake; `cause` is the error for its Errno. */
export class Refused extends AgentOSError { constructor(cause: AgentOSError); readonly cause: AgentOSError }
/** The error for a wire Errno. */
export function fromErrno(e: Errno): AgentOSError;
export const ERRNO_KINDS: readonly ErrnoKind[];
