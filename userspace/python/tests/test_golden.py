"""Byte compatibility with the Rust ABI: every golden vector under syscalls/tests/golden/ is
encoded from the same sample value as syscalls/tests/golden.rs and decoded back to it. A
golden file with no Python sample fails, so a new ABI type cannot land without Python support.
"""

from __future__ import annotations

import pathlib
import unittest
from typing import Any, Dict, Tuple

from agentos import abi
from agentos.abi import (
    AgentFrame, AgentId, AgentRef, ControlRequest, ControlResponse, Errno, Event, ExitStatus,
    KernelFrame, Reply, Signal, Syscall,
)
from agentos.frame import HEADER_LEN, encode_frame
from agentos._wire import decode

GOLDEN = pathlib.Path(__file__).resolve().parents[3] / "syscalls" / "tests" / "golden"


def sample_syscalls() -> Dict[str, Syscall]:
    calls = [
        Syscall.Read(path="/mem/working/notes.txt", offset=0, len=4096),
        Syscall.Write(path="/mem/working/a", data=b"hi", mode=abi.WriteMode.APPEND),
        Syscall.Open(path="/workspace/x", mode=abi.OpenMode.Write(abi.WriteMode.CREATE_NEW)),
        Syscall.Close(fd=3),
        Syscall.List(path="/mem/working"),
        Syscall.Stat(path="/policy/security.md"),
        Syscall.Unlink(path="/mem/working/a"),
        Syscall.Exec(argv=["/bin/echo", "hi"], stdin=b"", cwd="/workspace", timeout_ms=1000),
        Syscall.Call(action="api_call", params_json='{"url":"http://127.0.0.1/"}'),
        Syscall.Send(to=AgentId(2), payload=b"ping"),
        Syscall.Recv(timeout_ms=None),
        Syscall.Signal(target=AgentId(2), signal=Signal.STOP),
        Syscall.CheckPolicy(action="file_write", resource="/workspace/src/main.rs"),
        Syscall.Checkpoint(),
        Syscall.Exit(code=0),
        Syscall.ReadFd(fd=4, len=65536),
        Syscall.WriteFd(fd=4, data=bytes([0, 255])),
        Syscall.Rename("/workspace/a.txt", "/workspace/b.txt"),
        Syscall.ListTools(),
    ]
    assert sorted(c._tag for c in calls) == list(range(abi.SYSCALL_COUNT)), "a Syscall variant has no sample"
    return {f"syscall_{c.name}": c for c in calls}


def sample_replies() -> Dict[str, Any]:
    stat = abi.FileStat(kind=abi.FileKind.FILE, size=2, modified_ms=1_700_000_000_000, read_only=False)
    return {
        "done": Reply.Done(),
        "data": Reply.Data(b"hello"),
        "written": Reply.Written(5),
        "opened": Reply.Opened(4),
        "entries": Reply.Entries([abi.DirEntry("a", abi.FileKind.DIRECTORY, 0)]),
        "stat": Reply.Stat(stat),
        "exec": Reply.Exec(abi.ExecOutput(0, b"hi\n", b"", 3, False, False)),
        "call_result": Reply.CallResult("{}"),
        "message": Reply.Message(abi.Message(AgentId(1), 9, b"x")),
        "decision": Reply.Decision(abi.Decision(False, "deny-etc (security.md:14)", "path under /etc")),
        "checkpoint": Reply.Checkpoint(1),
        "tools": Reply.Tools([abi.ToolInfo("everything", "echo", "Echoes back the input", '{"type":"object"}')]),
        "err_permission_denied": Errno.PermissionDenied("r (s.md:3)", "no"),
        "err_not_found": Errno.NotFound("/mem/working/x"),
        "err_invalid_argument": Errno.InvalidArgument("empty path"),
        "err_rate_limited": Errno.RateLimited(200),
        "err_approval_denied": Errno.ApprovalDenied(),
        "err_approval_timeout": Errno.ApprovalTimeout(),
        "err_quota_exceeded": Errno.QuotaExceeded("bytes"),
        "err_too_large": Errno.TooLarge(20, 10),
        "err_protocol_violation": Errno.ProtocolViolation("bad frame"),
        "err_unsupported": Errno.Unsupported("exec"),
        "err_internal": Errno.Internal("io"),
        "err_busy": Errno.Busy("inbox"),
        "err_bad_descriptor": Errno.BadDescriptor(9),
        "err_is_directory": Errno.IsDirectory("/mem"),
        "err_not_directory": Errno.NotDirectory("/mem/a/b"),
        "err_already_exists": Errno.AlreadyExists("/mem/a"),
        "err_timed_out": Errno.TimedOut(5),
        "err_interrupted": Errno.Interrupted("SIGTERM"),
    }


def sample_info() -> abi.AgentInfo:
    return abi.AgentInfo(
        id=AgentId(3), name="builder", state=abi.AgentState.EXITED, pid=4242,
        program="/usr/bin/python3", args=["agent.py"], started_ms=1_700_000_000_000,
        first_syscall_us=2500, counters=abi.AgentCounters(10, 9, 1, 1, 1, 2, 3, 1),
        exit=ExitStatus.Killed(Signal.POLICY, "rule x"), policy_path="/p/.agents/security.md",
        policy_digest=bytes([1] * 32), log_path="/s/agents/3/output.log", jail=None,
        usage=abi.AgentUsage(memory_bytes=512 << 20, pids=7),
        denials=abi.DenialSummary([
            abi.Denial(abi.DenialKind.ALLOWED, "file_write", "/etc/x", "",
                       "no rule allows file_write (permissive)", 2),
            abi.Denial(abi.DenialKind.SANDBOX, "socket", "socket(AF_INET, SOCK_DGRAM)",
                       "sandbox: no network", "seccomp", 1),
            abi.Denial(abi.DenialKind.REFUSED, "file_read", "/w/x", "r (p.md:3)", "dry_run", 1),
        ], 4),
    )


def samples() -> Dict[str, Tuple[type, Any]]:
    out: Dict[str, Tuple[type, Any]] = {}
    for name, call in sample_syscalls().items():
        out[name] = (AgentFrame, AgentFrame.Request(abi.Request(7, call)))
    for name, result in sample_replies().items():
        out[f"response_{name}"] = (KernelFrame, KernelFrame.Response(abi.Response(7, result)))
    out["hello"] = (AgentFrame, AgentFrame.Hello(abi.Hello(abi.ABI_VERSION, "agentos-rust/0.1.0")))
    out["welcome"] = (KernelFrame, KernelFrame.Welcome(abi.Welcome(
        abi.ABI_VERSION, AgentId(1), abi.Limits(abi.DEFAULT_MAX_FRAME, 64), bytes([0xAB] * 32))))
    out["refused"] = (KernelFrame, KernelFrame.Refused(Errno.ProtocolViolation("abi 9 is not 1")))
    for sig in Signal:
        out[f"event_{sig.signame.lower()}"] = (KernelFrame, KernelFrame.Event(Event.Signal(sig, "operator")))
    out["jail_report"] = (AgentFrame, AgentFrame.JailReport(abi.JailReport([
        abi.Layer("landlock", abi.LayerStatus.Active("abi 6")),
        abi.Layer("cgroup", abi.LayerStatus.Missing("not delegated")),
        abi.Layer("seccomp", abi.LayerStatus.Partial("x")),
    ])))
    out["sandbox_listener"] = (AgentFrame, AgentFrame.SandboxListener())
    out["egress_listener"] = (AgentFrame, AgentFrame.EgressListener())
    out["tool_exit"] = (AgentFrame, AgentFrame.ToolExit(-137))
    out["traced_request"] = (AgentFrame, AgentFrame.TracedRequest(
        abi.Request(9, abi.Syscall.Checkpoint()),
        abi.TraceContext.parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ))

    policy = abi.PolicySource("/p/.agents/security.md", "kernel: {}")
    spawn = abi.SpawnRequest(
        name="builder", policy=policy, workspace="/w", program="/usr/bin/python3",
        args=["agent.py"], env=[("K", "V")], extra_read_only=["/p/agents"],
    )
    requests = {
        "status": ControlRequest.Status(),
        "spawn": ControlRequest.Spawn(spawn),
        "ps": ControlRequest.Ps(),
        "wait": ControlRequest.Wait(AgentRef.Id(AgentId(3))),
        "signal": ControlRequest.Signal(AgentRef.Name("builder"), Signal.TERM),
        "logs": ControlRequest.Logs(AgentRef.Id(AgentId(3)), True),
        "shutdown": ControlRequest.Shutdown(),
        "inspect": ControlRequest.Inspect(AgentRef.Id(AgentId(3))),
        "approvals": ControlRequest.Approvals(),
        "approve": ControlRequest.Approve(12),
        "deny": ControlRequest.Deny(13),
        "reload_policy": ControlRequest.ReloadPolicy(AgentRef.Name("builder"), policy),
        "spawn_restored": ControlRequest.SpawnRestored(spawn, AgentId(3), 2),
        "approvals_page": ControlRequest.ApprovalsPage(abi.ApprovalQuery(50, 12, AgentId(3))),
        "forget": ControlRequest.Forget([AgentRef.Id(AgentId(3)), AgentRef.Name("builder")]),
        "prune": ControlRequest.Prune(3_600_000),
    }
    for name, req in requests.items():
        out[f"control_req_{name}"] = (ControlRequest, req)
    status = abi.KernelStatus(1, 0, "0.1.0", abi.ABI_VERSION, "/s", "/s/recorder", 1, 1, 2,
                              [abi.Layer("seccomp", abi.LayerStatus.Active(""))], "/s/kernel.log",
                              ["flight recorder: the disk is full"], "http://127.0.0.1:9464/metrics", None)
    responses: Dict[str, Any] = {
        "status": ControlResponse.Status(status),
        "spawned": ControlResponse.Spawned(sample_info()),
        "agents": ControlResponse.Agents([sample_info()]),
        "signaled": ControlResponse.Signaled(AgentId(3), Signal.STOP),
        "log_chunk": ControlResponse.LogChunk(b"out\n"),
        "log_end": ControlResponse.LogEnd(),
        "shutting_down": ControlResponse.ShuttingDown(),
        "error": ControlResponse.Error(abi.ControlError(abi.ControlErrorKind.NOT_FOUND, "no agent 9", "agentctl ps")),
        "approvals": ControlResponse.Approvals([abi.ApprovalInfo(
            12, AgentId(3), "file_write", "/mem/working/gated/x", 1500, "gated (/p/.agents/security.md:14)",
            None, None)]),
        "decided": ControlResponse.Decided(12, True),
        "reloaded": ControlResponse.Reloaded(AgentId(3), bytes([1] * 32), bytes([2] * 32)),
        "approvals_page": ControlResponse.ApprovalsPage(abi.ApprovalPage(
            [abi.ApprovalInfo(12, AgentId(3), "file_write", "/mem/working/gated/x", 1500,
                              "gated (/p/.agents/security.md:14)", "builder",
                              abi.PayloadPreview(5, b"a\x1bb\n", bytes([7] * 32)))],
            [abi.ApprovalCount(AgentId(3), 1, 4, 12)], 3)),
        "forgotten": ControlResponse.Forgotten([AgentId(3), AgentId(4)]),
    }
    exits = [ExitStatus.Code(3), ExitStatus.PosixSignal(11), ExitStatus.Killed(Signal.KILL, ""),
             ExitStatus.SandboxFailed("landlock missing")]
    for i, ex in enumerate(exits):
        info = sample_info()
        info = abi.AgentInfo(**{**info.__dict__, "exit": ex, "state": list(abi.AgentState)[i]})
        responses[f"agent_{i}"] = ControlResponse.Agent(info)
    awaiting = abi.AgentInfo(**{**sample_info().__dict__, "exit": None,
                                "state": abi.AgentState.AWAITING_APPROVAL})
    responses["agent_4"] = ControlResponse.Agent(awaiting)
    for name, resp in responses.items():
        out[f"control_resp_{name}"] = (ControlResponse, resp)
    return out


GOLDEN_FILES = sorted(p.stem for p in GOLDEN.glob("*.hex"))


class GoldenTests(unittest.TestCase):
    def test_golden_dir_found(self) -> None:
        self.assertGreater(len(GOLDEN_FILES), 50, f"no golden vectors under {GOLDEN}")

    def test_every_sample_has_a_golden_file(self) -> None:
        missing = sorted(set(samples()) - set(GOLDEN_FILES))
        self.assertFalse(missing, f"Python samples without a golden vector: {missing}")

    def test_golden_vectors(self) -> None:
        """Each vector on its own (a failing one names itself and the others still run)."""
        table = samples()
        for name in GOLDEN_FILES:
            with self.subTest(vector=name):
                self.assertIn(name, table, f"golden vector {name}.hex has no Python sample: "
                              "the Python SDK does not cover this ABI type")
                cls, value = table[name]
                golden = bytes.fromhex((GOLDEN / f"{name}.hex").read_text().strip())
                self.assertEqual(encode_frame(value).hex(), golden.hex(), f"{name}: Python encodes different bytes")
                decoded = decode(cls, golden[HEADER_LEN:])
                self.assertEqual(decoded, value, f"{name}: decodes to {decoded!r}")
                self.assertEqual(int.from_bytes(golden[:HEADER_LEN], "little"), len(golden) - HEADER_LEN)


if __name__ == "__main__":
    unittest.main()
