// Byte compatibility with the Rust ABI: every golden vector under syscalls/tests/golden/ is
// encoded from the same sample value as syscalls/tests/golden.rs (and the Python SDK's
// test_golden.py) and decoded back to it. A golden file with no sample here fails, so a new
// ABI type cannot land without TypeScript support.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

import * as abi from '../src/abi.js';
import { decode, encodeFrame, HEADER_LEN } from '../src/frame.js';
import { ERRNO_KINDS } from '../src/errors.js';

const GOLDEN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../syscalls/tests/golden');
const bytes = (...b) => new Uint8Array(b);
const fill = (n, b) => new Uint8Array(n).fill(b);
const text = (s) => new TextEncoder().encode(s);

function sampleSyscalls() {
  const calls = [
    { type: 'Read', path: '/mem/working/notes.txt', offset: 0, len: 4096 },
    { type: 'Write', path: '/mem/working/a', data: text('hi'), mode: 'Append' },
    { type: 'Open', path: '/workspace/x', mode: { type: 'Write', mode: 'CreateNew' } },
    { type: 'Close', fd: 3 },
    { type: 'List', path: '/mem/working' },
    { type: 'Stat', path: '/policy/security.md' },
    { type: 'Unlink', path: '/mem/working/a' },
    { type: 'Exec', argv: ['/bin/echo', 'hi'], stdin: bytes(), cwd: '/workspace', timeoutMs: 1000 },
    { type: 'Call', action: 'api_call', paramsJson: '{"url":"http://127.0.0.1/"}' },
    { type: 'Send', to: 2, payload: text('ping') },
    { type: 'Recv', timeoutMs: null },
    { type: 'Signal', target: 2, signal: 'SIGSTOP' },
    { type: 'CheckPolicy', action: 'file_write', resource: '/workspace/src/main.rs' },
    { type: 'Checkpoint' },
    { type: 'Exit', code: 0 },
    { type: 'ReadFd', fd: 4, len: 65536 },
    { type: 'WriteFd', fd: 4, data: bytes(0, 255) },
    { type: 'Rename', from: '/workspace/a.txt', to: '/workspace/b.txt' },
    { type: 'ListTools' },
  ];
  assert.deepEqual(calls.map((c) => c.type), abi.Syscall.names, 'a Syscall variant has no sample');
  return Object.fromEntries(calls.map((c) => [`syscall_${abi.SYSCALL_NAMES[c.type]}`, c]));
}

function sampleReplies() {
  const stat = { kind: 'File', size: 2, modifiedMs: 1_700_000_000_000, readOnly: false };
  const ok = (r) => ({ ok: r });
  const err = (e) => ({ err: e });
  return {
    done: ok({ type: 'Done' }),
    data: ok({ type: 'Data', data: text('hello') }),
    written: ok({ type: 'Written', bytes: 5 }),
    opened: ok({ type: 'Opened', fd: 4 }),
    entries: ok({ type: 'Entries', entries: [{ name: 'a', kind: 'Directory', size: 0 }] }),
    stat: ok({ type: 'Stat', stat }),
    exec: ok({ type: 'Exec', output: { status: 0, stdout: text('hi\n'), stderr: bytes(), durationMs: 3, truncated: false, timedOut: false } }),
    call_result: ok({ type: 'CallResult', resultJson: '{}' }),
    message: ok({ type: 'Message', message: { from: 1, seq: 9, payload: text('x') } }),
    decision: ok({ type: 'Decision', decision: { allowed: false, rule: 'deny-etc (security.md:14)', reason: 'path under /etc' } }),
    checkpoint: ok({ type: 'Checkpoint', number: 1 }),
    tools: ok({ type: 'Tools', tools: [{ server: 'everything', name: 'echo', description: 'Echoes back the input', inputSchemaJson: '{"type":"object"}' }] }),
    err_permission_denied: err({ type: 'PermissionDenied', rule: 'r (s.md:3)', reason: 'no' }),
    err_not_found: err({ type: 'NotFound', what: '/mem/working/x' }),
    err_invalid_argument: err({ type: 'InvalidArgument', reason: 'empty path' }),
    err_rate_limited: err({ type: 'RateLimited', retryAfterMs: 200 }),
    err_approval_denied: err({ type: 'ApprovalDenied' }),
    err_approval_timeout: err({ type: 'ApprovalTimeout' }),
    err_quota_exceeded: err({ type: 'QuotaExceeded', what: 'bytes' }),
    err_too_large: err({ type: 'TooLarge', size: 20, limit: 10 }),
    err_protocol_violation: err({ type: 'ProtocolViolation', reason: 'bad frame' }),
    err_unsupported: err({ type: 'Unsupported', what: 'exec' }),
    err_internal: err({ type: 'Internal', reason: 'io' }),
    err_busy: err({ type: 'Busy', what: 'inbox' }),
    err_bad_descriptor: err({ type: 'BadDescriptor', fd: 9 }),
    err_is_directory: err({ type: 'IsDirectory', path: '/mem' }),
    err_not_directory: err({ type: 'NotDirectory', path: '/mem/a/b' }),
    err_already_exists: err({ type: 'AlreadyExists', path: '/mem/a' }),
    err_timed_out: err({ type: 'TimedOut', afterMs: 5 }),
    err_interrupted: err({ type: 'Interrupted', reason: 'SIGTERM' }),
  };
}

function sampleInfo() {
  return {
    id: 3, name: 'builder', state: 'Exited', pid: 4242, program: '/usr/bin/python3',
    args: ['agent.py'], startedMs: 1_700_000_000_000, firstSyscallUs: 2500,
    counters: { syscalls: 10, allowed: 9, denied: 1, signals: 1, parked: 1, violations: 2, sandboxDenied: 3, awaitingApproval: 1 },
    exit: { type: 'Killed', signal: 'SIGPOLICY', reason: 'rule x' },
    policyPath: '/p/.agents/security.md', policyDigest: fill(32, 1),
    logPath: '/s/agents/3/output.log', jail: null,
    usage: { memoryBytes: 512 * 2 ** 20, pids: 7 },
    denials: {
      top: [
        { kind: 'Allowed', action: 'file_write', resource: '/etc/x', rule: '', reason: 'no rule allows file_write (permissive)', count: 2 },
        { kind: 'Sandbox', action: 'socket', resource: 'socket(AF_INET, SOCK_DGRAM)', rule: 'sandbox: no network', reason: 'seccomp', count: 1 },
        { kind: 'Refused', action: 'file_read', resource: '/w/x', rule: 'r (p.md:3)', reason: 'dry_run', count: 1 },
      ],
      total: 4,
    },
  };
}

function samples() {
  const out = {};
  for (const [name, call] of Object.entries(sampleSyscalls())) {
    out[name] = [abi.AgentFrame, { type: 'Request', request: { id: 7, call } }];
  }
  for (const [name, result] of Object.entries(sampleReplies())) {
    out[`response_${name}`] = [abi.KernelFrame, { type: 'Response', response: { id: 7, result } }];
  }
  out.hello = [abi.AgentFrame, { type: 'Hello', hello: { abi: abi.ABI_VERSION, sdk: 'agentos-rust/0.1.0' } }];
  out.welcome = [abi.KernelFrame, {
    type: 'Welcome',
    welcome: { abi: abi.ABI_VERSION, agentId: 1, limits: { maxFrame: abi.DEFAULT_MAX_FRAME, maxInFlight: 64 }, policyDigest: fill(32, 0xab) },
  }];
  out.refused = [abi.KernelFrame, { type: 'Refused', errno: { type: 'ProtocolViolation', reason: 'abi 9 is not 1' } }];
  for (const sig of abi.Signal.names) {
    out[`event_${sig.toLowerCase()}`] = [abi.KernelFrame, { type: 'Event', event: { type: 'Signal', signal: sig, reason: 'operator' } }];
  }
  out.jail_report = [abi.AgentFrame, {
    type: 'JailReport',
    report: {
      layers: [
        { name: 'landlock', status: { type: 'Active', detail: 'abi 6' } },
        { name: 'cgroup', status: { type: 'Missing', detail: 'not delegated' } },
        { name: 'seccomp', status: { type: 'Partial', detail: 'x' } },
      ],
    },
  }];
  out.sandbox_listener = [abi.AgentFrame, { type: 'SandboxListener' }];
  out.egress_listener = [abi.AgentFrame, { type: 'EgressListener' }];
  out.tool_exit = [abi.AgentFrame, { type: 'ToolExit', status: -137 }];
  out.traced_request = [abi.AgentFrame, {
    type: 'TracedRequest',
    request: { id: 9, call: { type: 'Checkpoint' } },
    trace: abi.parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'),
  }];

  const policy = { path: '/p/.agents/security.md', text: 'kernel: {}' };
  const spawn = {
    name: 'builder', policy, workspace: '/w', program: '/usr/bin/python3', args: ['agent.py'],
    env: [['K', 'V']], extraReadOnly: ['/p/agents'],
  };
  const id3 = { type: 'Id', id: 3 };
  const builder = { type: 'Name', name: 'builder' };
  const requests = {
    status: { type: 'Status' },
    spawn: { type: 'Spawn', spawn },
    ps: { type: 'Ps' },
    wait: { type: 'Wait', agent: id3 },
    signal: { type: 'Signal', agent: builder, signal: 'SIGTERM' },
    logs: { type: 'Logs', agent: id3, follow: true },
    shutdown: { type: 'Shutdown' },
    inspect: { type: 'Inspect', agent: id3 },
    approvals: { type: 'Approvals' },
    approve: { type: 'Approve', id: 12 },
    deny: { type: 'Deny', id: 13 },
    reload_policy: { type: 'ReloadPolicy', agent: builder, policy },
    spawn_restored: { type: 'SpawnRestored', spawn, from: 3, checkpoint: 2 },
    approvals_page: { type: 'ApprovalsPage', query: { limit: 50, after: 12, agent: 3 } },
    forget: { type: 'Forget', agents: [id3, builder] },
    prune: { type: 'Prune', olderThanMs: 3_600_000 },
  };
  for (const [name, req] of Object.entries(requests)) out[`control_req_${name}`] = [abi.ControlRequest, req];

  const status = {
    pid: 1, uid: 0, version: '0.1.0', abi: abi.ABI_VERSION, stateDir: '/s', recorderDir: '/s/recorder',
    startedMs: 1, agentsRunning: 1, agentsTotal: 2,
    sandbox: [{ name: 'seccomp', status: { type: 'Active', detail: '' } }],
    logPath: '/s/kernel.log', health: ['flight recorder: the disk is full'],
    metricsUrl: 'http://127.0.0.1:9464/metrics', otlpEndpoint: null,
  };
  const approval = (agentName, payload) => ({
    id: 12, agent: 3, action: 'file_write', resource: '/mem/working/gated/x', ageMs: 1500,
    rule: 'gated (/p/.agents/security.md:14)', agentName, payload,
  });
  const responses = {
    status: { type: 'Status', status },
    spawned: { type: 'Spawned', info: sampleInfo() },
    agents: { type: 'Agents', agents: [sampleInfo()] },
    signaled: { type: 'Signaled', agent: 3, signal: 'SIGSTOP' },
    log_chunk: { type: 'LogChunk', data: text('out\n') },
    log_end: { type: 'LogEnd' },
    shutting_down: { type: 'ShuttingDown' },
    error: { type: 'Error', error: { kind: 'NotFound', message: 'no agent 9', hint: 'agentctl ps' } },
    approvals: { type: 'Approvals', approvals: [approval(null, null)] },
    decided: { type: 'Decided', id: 12, approved: true },
    reloaded: { type: 'Reloaded', agent: 3, oldDigest: fill(32, 1), newDigest: fill(32, 2) },
    approvals_page: {
      type: 'ApprovalsPage',
      page: {
        approvals: [approval('builder', { bytes: 5, head: bytes(0x61, 0x1b, 0x62, 0x0a), blake3: fill(32, 7) })],
        agents: [{ agent: 3, shown: 1, matching: 4, lastShown: 12 }],
        more: 3,
      },
    },
    forgotten: { type: 'Forgotten', agents: [3, 4] },
  };
  const exits = [
    { type: 'Code', code: 3 },
    { type: 'PosixSignal', signal: 11 },
    { type: 'Killed', signal: 'SIGKILL', reason: '' },
    { type: 'SandboxFailed', reason: 'landlock missing' },
  ];
  exits.forEach((exit, i) => {
    responses[`agent_${i}`] = { type: 'Agent', info: { ...sampleInfo(), exit, state: abi.AgentState.names[i] } };
  });
  responses.agent_4 = { type: 'Agent', info: { ...sampleInfo(), exit: null, state: 'AwaitingApproval' } };
  for (const [name, resp] of Object.entries(responses)) out[`control_resp_${name}`] = [abi.ControlResponse, resp];
  return out;
}

const GOLDEN_FILES = readdirSync(GOLDEN).filter((f) => f.endsWith('.hex')).map((f) => f.slice(0, -4)).sort();
const hex = (b) => Buffer.from(b).toString('hex');

test('the golden directory is found', () => {
  assert.ok(GOLDEN_FILES.length > 50, `no golden vectors under ${GOLDEN}`);
});

test('every sample has a golden file', () => {
  const missing = Object.keys(samples()).filter((n) => !GOLDEN_FILES.includes(n));
  assert.deepEqual(missing, [], `TypeScript samples without a golden vector: ${missing}`);
});

test('every Errno variant has an error class', () => {
  assert.deepEqual(ERRNO_KINDS, abi.Errno.names);
  assert.deepEqual(Object.keys(abi.POSIX_ERRNO), abi.Errno.names);
});

const table = samples();
for (const name of GOLDEN_FILES) {
  test(`golden vector ${name}`, () => {
    assert.ok(name in table, `golden vector ${name}.hex has no TypeScript sample: the TypeScript SDK does not cover this ABI type`);
    const [codec, value] = table[name];
    const golden = Buffer.from(readFileSync(path.join(GOLDEN, `${name}.hex`), 'utf8').trim(), 'hex');
    assert.equal(hex(encodeFrame(codec, value)), hex(golden), `${name}: TypeScript encodes different bytes`);
    const decoded = decode(codec, new Uint8Array(golden.subarray(HEADER_LEN)));
    assert.deepStrictEqual(decoded, value, `${name}: decodes to a different value`);
    assert.equal(golden.readUInt32LE(0), golden.length - HEADER_LEN);
  });
}
