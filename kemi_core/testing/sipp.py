"""Run SIPp (Debian's sip-tester) as UAC or UAS against 127.0.0.1, bounded in calls and time."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import attrs

from kemi_core.testing.netstat import socket_inodes, udp_inodes
from kemi_core.testing.process import free_port
from kemi_core.testing.wait import wait_until

#: SIPp's exit codes (its documentation, "Exit codes").
SIPP_ALL_OK = 0
SIPP_SOME_FAILED = 1


def sipp_available() -> bool:
    """Whether SIPp (Debian's sip-tester) is on PATH (tests needing it skip without it)."""
    return shutil.which("sipp") is not None


@attrs.define
class SippResult:
    returncode: int
    stdout: str
    stats: dict[str, str]

    @property
    def successful(self) -> int:
        return int(self.stats.get("SuccessfulCall(C)", "0") or 0)

    @property
    def failed(self) -> int:
        return int(self.stats.get("FailedCall(C)", "0") or 0)


def _read_stats(path: Path) -> dict[str, str]:
    """The last row of SIPp's -trace_stat CSV (cumulative counters), by column name."""
    if not path.exists():
        return {}
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh, delimiter=";"))
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


def run_sipp(target: str | None, workdir: Path, *, scenario: str | Path = "uac", calls: int = 10,
             rate: float = 10, local_port: int = 0, timeout: float = 60, extra: list[str] | None = None,
             name: str = "sipp") -> SippResult:
    """Run one SIPp instance to completion (``-m calls``), killed after ``timeout`` seconds.

    ``scenario`` is a built-in name (uac, uas, ...) or an XML file. ``target`` is host:port for a
    UAC, None for a UAS.
    """
    stat_file = workdir / f"{name}_stats.csv"
    if local_port == 0:  # SIPp's own default is 5060: never take a port a server may need
        local_port = free_port()
    args = ["sipp"]
    if target:
        args.append(target)
    args += ["-sf", str(scenario)] if str(scenario).endswith(".xml") else ["-sn", str(scenario)]
    args += ["-i", "127.0.0.1", "-p", str(local_port), "-m", str(calls), "-r", str(rate),
             "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error",
             "-trace_stat", "-stf", str(stat_file), "-fd", "1",
             "-trace_err", "-error_file", str(workdir / f"{name}_errors.log")]
    args += extra or []
    try:
        proc = subprocess.run(args, cwd=workdir, capture_output=True, text=True,
                              timeout=timeout + 15)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else str(exc.stdout)
        return SippResult(-9, out, _read_stats(stat_file))
    return SippResult(proc.returncode, proc.stdout + proc.stderr, _read_stats(stat_file))


class SippExited(RuntimeError):
    """A SIPp UAS exited while starting (its port was taken, or a bad scenario)."""


class SippUas:
    """A SIPp UAS running in the background until stopped (by its PID)."""

    def __init__(self, workdir: Path, port: int, scenario: str | Path = "uas", calls: int = 0,
                 name: str = "uas", extra: list[str] | None = None) -> None:
        self.workdir = workdir
        self.port = port
        self.name = name
        args = ["sipp", "-i", "127.0.0.1", "-p", str(port), "-nostdin", "-trace_err",
                "-error_file", str(workdir / f"{name}_errors.log"),
                "-trace_stat", "-stf", str(workdir / f"{name}_stats.csv"), "-fd", "1"]
        args += ["-sf", str(scenario)] if str(scenario).endswith(".xml") else ["-sn", str(scenario)]
        if calls:
            args += ["-m", str(calls)]
        args += extra or []
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> SippUas:
        """Start SIPp and return once its UDP socket is bound (requests sent from then on are
        received); SippExited if it exits first (the port was taken, a bad scenario)."""
        self._out = open(self.workdir / f"{self.name}.out", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.args, cwd=self.workdir, stdout=self._out,
                                     stderr=subprocess.STDOUT)
        proc = self.proc
        wait_until(lambda: proc.poll() is not None or self.listening(), timeout,
                   f"SIPp UAS {self.name} to listen on udp 127.0.0.1:{self.port}")
        if proc.poll() is not None:
            self.stop()
            errors = self.workdir / f"{self.name}_errors.log"
            why = (errors.read_text(errors="replace") if errors.exists() else "")[-500:]
            raise SippExited(f"SIPp UAS {self.name} on port {self.port} exited with "
                             f"{proc.returncode}: {why.strip()}")
        return self

    def listening(self) -> bool:
        """Whether this SIPp process (not another one) holds udp 127.0.0.1:port."""
        assert self.proc is not None
        return bool(udp_inodes(self.port) & socket_inodes(self.proc.pid))

    def wait(self, timeout: float = 30.0) -> dict[str, str]:
        """Wait for a UAS started with ``calls=N`` to exit, which SIPp does once N calls have
        ended (including the few seconds it keeps each finished call for retransmissions),
        and return its final statistics. Stopped by its PID if it has not exited in time."""
        assert self.proc is not None, "not started"
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        return self.stop()

    def stop(self) -> dict[str, str]:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._out.close()
        return _read_stats(self.workdir / f"{self.name}_stats.csv")

    def __enter__(self) -> SippUas:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
