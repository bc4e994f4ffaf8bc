"""Start and stop pinned server processes, wait for their ports, sample their RSS.

Every process is started in its own session (process group) so that stopping it also stops
its children (Gunicorn workers); every started process is registered, and ``stop_all`` runs
on exit and on SIGINT/SIGTERM so a failed or interrupted run leaves nothing behind.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

_RUNNING: list[Proc] = []
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


class HarnessError(RuntimeError):
    """A harness failure (a server did not start, a tool is missing): the run exits non-zero."""


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (bind to port 0 and let the kernel choose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cmd: Sequence[str], core: int | None) -> list[str]:
    """``cmd`` prefixed with ``taskset -c core`` (children inherit the affinity)."""
    if core is None or shutil.which("taskset") is None or core >= (os.cpu_count() or 1):
        return list(cmd)
    return ["taskset", "-c", str(core), *cmd]


class Proc:
    """One started server: its own process group, output to a log file."""

    def __init__(self, name: str, cmd: Sequence[str], *, core: int | None, log: Path,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._logf = log.open("ab")
        self.popen = subprocess.Popen(pinned(cmd, core), stdout=self._logf,
                                      stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                      cwd=cwd, start_new_session=True)
        self.pid = self.popen.pid
        # Run after the process is gone (e.g. drop a per-run database schema), once each.
        self.on_stop: list[Callable[[], None]] = []
        _RUNNING.append(self)

    def wait_port(self, port: int, timeout: float = 20.0) -> None:
        """Block until ``port`` accepts connections; HarnessError if the process dies first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise HarnessError(f"{self.name} exited with {self.popen.returncode} before "
                                   f"listening; log: {self.log}\n{self.tail()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise HarnessError(f"{self.name} did not listen on {port} within {timeout}s; "
                           f"log: {self.log}\n{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        """The last lines of the process log (for error messages)."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def rss_bytes(self) -> int:
        """Resident memory of the process and all its descendants."""
        return sum(_rss(pid) for pid in [self.pid, *descendants(self.pid)])

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the process and its live descendants."""
        return sum(_cpu(pid) for pid in [self.pid, *descendants(self.pid)])

    def child_pids(self) -> list[int]:
        """Descendant PIDs (e.g. the Gunicorn worker under its master)."""
        return descendants(self.pid)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``timeout``; idempotent."""
        if self in _RUNNING:
            _RUNNING.remove(self)
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:  # also workers that outlived their master
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.popen.poll() is None:
            self.popen.wait(2)
        self._logf.close()
        while self.on_stop:
            try:
                self.on_stop.pop()()
            except Exception as exc:  # noqa: BLE001 - cleanup must not hide the run's result
                print(f"bench: cleanup after {self.name} failed: {exc}", flush=True)


def descendants(pid: int) -> list[int]:
    """All descendant PIDs, read from /proc/<pid>/task/*/children."""
    out: list[int] = []
    todo = [pid]
    while todo:
        cur = todo.pop()
        for task in Path(f"/proc/{cur}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


def _cpu(pid: int) -> float:
    try:
        # Fields after the ")" of the command name; utime and stime are fields 14 and 15.
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


class RSSSampler:
    """Samples a process tree's RSS every ``interval`` seconds in a thread; keeps the peak."""

    def __init__(self, proc: Proc, interval: float = 0.1) -> None:
        self.proc = proc
        self.interval = interval
        self.peak = 0
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            rss = self.proc.rss_bytes()
            self.peak = max(self.peak, rss)
            self.samples.append((time.monotonic() - t0, rss))
            self._stop.wait(self.interval)

    def __enter__(self) -> RSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def stop_all() -> None:
    """Stop every process this harness started (newest first)."""
    for proc in reversed(list(_RUNNING)):
        proc.stop(timeout=3)


def _on_signal(signum: int, frame: object) -> None:
    stop_all()
    raise SystemExit(128 + signum)


def install_cleanup() -> None:
    """Stop everything on interpreter exit and on SIGINT/SIGTERM."""
    atexit.register(stop_all)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
