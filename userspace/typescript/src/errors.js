// Errors: one class per `Errno` variant, plus the SDK's own.
//
// Every error carries `errno`, the stable POSIX number of `Errno::posix`, and `wire`, the
// Errno value the kernel sent (`null` when the SDK threw it itself, e.g. TooLarge for a
// payload it refused to send). `PermissionDenied` is the parent of `ApprovalDenied` and
// `ApprovalTimeout`, so one `instanceof PermissionDenied` catches every refusal by policy.

import { POSIX_ERRNO } from './abi.js';

/** Base of every agentos error. */
export class AgentOSError extends Error {
  constructor(message, errno = 5) {
    super(message);
    this.name = new.target.name;
    this.errno = errno;
    this.wire = null;
  }

  /** The Errno variant's name (`PermissionDenied`), or the SDK error's class name. */
  get kind() {
    return this.name;
  }
}

/** The policy refused the call. `rule` is `id (file:line)`, empty for a default deny. */
export class PermissionDenied extends AgentOSError {
  constructor(rule, reason, message, errno = POSIX_ERRNO.PermissionDenied) {
    super(message ?? `denied by policy: ${rule || 'default deny'}: ${reason}`, errno);
    this.rule = rule;
    this.reason = reason;
  }
}

export class NotFound extends AgentOSError {
  constructor(what) {
    super(`not found: ${what}`, POSIX_ERRNO.NotFound);
    this.what = what;
  }
}

export class InvalidArgument extends AgentOSError {
  constructor(reason) {
    super(`invalid argument: ${reason}`, POSIX_ERRNO.InvalidArgument);
    this.reason = reason;
  }
}

/** A `rate_limit` refused the call; retry after `retryAfterMs`. Not a violation. */
export class RateLimited extends AgentOSError {
  constructor(retryAfterMs) {
    super(`rate limited: retry after ${retryAfterMs} ms`, POSIX_ERRNO.RateLimited);
    this.retryAfterMs = retryAfterMs;
  }
}

/** An operator denied the approval the call's rule requires (`requires_approval`). */
export class ApprovalDenied extends PermissionDenied {
  constructor() {
    super('', 'the operator denied the approval',
      'denied by policy: the operator denied the approval this call needs (requires_approval)',
      POSIX_ERRNO.ApprovalDenied);
  }
}

/** Nobody approved the call before the kernel's approval timeout (`requires_approval`). */
export class ApprovalTimeout extends PermissionDenied {
  constructor() {
    super('', 'nobody approved the call in time',
      'denied by policy: nobody approved this call before the approval timeout (requires_approval)',
      POSIX_ERRNO.ApprovalTimeout);
  }
}

export class QuotaExceeded extends AgentOSError {
  constructor(what) {
    super(`quota exceeded: ${what}`, POSIX_ERRNO.QuotaExceeded);
    this.what = what;
  }
}

/** A payload is over its limit (thrown by the kernel, or by the SDK before sending). */
export class TooLarge extends AgentOSError {
  constructor(size, limit) {
    super(`too large: ${size} bytes over the limit of ${limit}`, POSIX_ERRNO.TooLarge);
    this.size = size;
    this.limit = limit;
  }
}

export class ProtocolViolation extends AgentOSError {
  constructor(reason) {
    super(`protocol violation: ${reason}`, POSIX_ERRNO.ProtocolViolation);
    this.reason = reason;
  }
}

/** The kernel does not serve this syscall (yet, or on this host). */
export class Unsupported extends AgentOSError {
  constructor(what) {
    super(`unsupported: ${what}`, POSIX_ERRNO.Unsupported);
    this.what = what;
  }
}

export class Internal extends AgentOSError {
  constructor(reason) {
    super(`internal kernel error: ${reason}`, POSIX_ERRNO.Internal);
    this.reason = reason;
  }
}

export class Busy extends AgentOSError {
  constructor(what) {
    super(`busy: ${what}`, POSIX_ERRNO.Busy);
    this.what = what;
  }
}

export class BadDescriptor extends AgentOSError {
  constructor(fd) {
    super(`bad descriptor ${fd}`, POSIX_ERRNO.BadDescriptor);
    this.fd = fd;
  }
}

export class IsDirectory extends AgentOSError {
  constructor(path) {
    super(`is a directory: ${path}`, POSIX_ERRNO.IsDirectory);
    this.path = path;
  }
}

export class NotDirectory extends AgentOSError {
  constructor(path) {
    super(`not a directory: ${path}`, POSIX_ERRNO.NotDirectory);
    this.path = path;
  }
}

export class AlreadyExists extends AgentOSError {
  constructor(path) {
    super(`already exists: ${path}`, POSIX_ERRNO.AlreadyExists);
    this.path = path;
  }
}

export class TimedOut extends AgentOSError {
  constructor(afterMs) {
    super(`timed out after ${afterMs} ms`, POSIX_ERRNO.TimedOut);
    this.afterMs = afterMs;
  }
}

export class Interrupted extends AgentOSError {
  constructor(reason) {
    super(`interrupted: ${reason}`, POSIX_ERRNO.Interrupted);
    this.reason = reason;
  }
}

// ---- the SDK's own errors (no Errno variant) ----

/** `AGENTOS_FD` is missing or unusable: the program is not running under agentos. */
export class NoKernel extends AgentOSError {}

/** The kernel closed the connection (the agent is ending, or the kernel stopped). */
export class ConnectionClosed extends AgentOSError {}

/** The kernel refused the handshake; `cause` is the error for its Errno. */
export class Refused extends AgentOSError {
  constructor(cause) {
    super(`handshake refused: ${cause.message}`, cause.errno);
    this.cause = cause;
  }
}

const BY_KIND = {
  PermissionDenied: (e) => new PermissionDenied(e.rule, e.reason),
  NotFound: (e) => new NotFound(e.what),
  InvalidArgument: (e) => new InvalidArgument(e.reason),
  RateLimited: (e) => new RateLimited(e.retryAfterMs),
  ApprovalDenied: () => new ApprovalDenied(),
  ApprovalTimeout: () => new ApprovalTimeout(),
  QuotaExceeded: (e) => new QuotaExceeded(e.what),
  TooLarge: (e) => new TooLarge(e.size, e.limit),
  ProtocolViolation: (e) => new ProtocolViolation(e.reason),
  Unsupported: (e) => new Unsupported(e.what),
  Internal: (e) => new Internal(e.reason),
  Busy: (e) => new Busy(e.what),
  BadDescriptor: (e) => new BadDescriptor(e.fd),
  IsDirectory: (e) => new IsDirectory(e.path),
  NotDirectory: (e) => new NotDirectory(e.path),
  AlreadyExists: (e) => new AlreadyExists(e.path),
  TimedOut: (e) => new TimedOut(e.afterMs),
  Interrupted: (e) => new Interrupted(e.reason),
};

/** The error for a wire Errno (`{ type: 'NotFound', what }`). */
export function fromErrno(e) {
  const make = BY_KIND[e.type];
  if (make === undefined) return new ProtocolViolation(`unknown errno ${JSON.stringify(e.type)}`);
  const err = make(e);
  err.wire = e;
  return err;
}

/** The Errno variants the SDK has a class for (a test checks it against the ABI). */
export const ERRNO_KINDS = Object.freeze(Object.keys(BY_KIND));
