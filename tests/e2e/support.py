"""Helpers for the end-to-end tests: `pulse` processes as real OS subprocesses, their logs, free ports.

Every process is started in its own session (so a Ctrl-C on pytest doesn't reach it half-way) and is stopped by
its own pid in the test's `finally`: SIGINT first (the CLI shuts down cleanly on it), SIGKILL if it lingers.
Output goes to one log file per process; on failure the tails are printed, which is where the reason usually is.
"""

from __future__ import annotations

import contextlib
import functools
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from support.waiting import eventually as _eventually

# Processes start slowly and answer errors (refused, 503) until ready: poll every half second, any error is "not yet".
eventually = functools.partial(_eventually, every_s=0.5, retry_on=(Exception,))

PULSE = Path(sys.executable).with_name("pulse")
LOG_TAIL_CHARS = 6_000
T = TypeVar("T")


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick; the small reuse race is acceptable here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored and children inherit that; `pulse` shuts down cleanly on
    # SIGINT only when Python installed its KeyboardInterrupt handler, which it does only over the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] = field(repr=False)
    expected_dead: bool = False  # killed on purpose by the test: its exit is not a failure
    forced: bool = False  # did not exit within the grace period after SIGINT and was SIGKILLed

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_has(self, text: str) -> bool:
        # Rendered log lines carry ANSI colour codes between fields; match on a fragment that has none inside.
        return text in self.log_text()

    def kill_hard(self) -> None:
        """SIGKILL, like a crashed machine: nothing gets a chance to ack, flush or leave its consumer group."""
        self.expected_dead = True
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, grace_s: float = 10.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.forced = True
                print(f"{self.name} (pid {self.popen.pid}) ignored SIGINT for {grace_s:.0f}s; SIGKILL", file=sys.stderr)
                with contextlib.suppress(ProcessLookupError):
                    self.popen.kill()
                self.popen.wait(timeout=10)
        self._log.close()


class Processes:
    """The subprocesses one test started; `stop_all` is safe to call whatever state they are in."""

    def __init__(self, log_dir: Path, env: dict[str, str], cwd: Path) -> None:
        self.log_dir, self.env, self.cwd = log_dir, env, cwd
        self.procs: list[Proc] = []

    def start(self, name: str, *args: str) -> Proc:
        log_path = self.log_dir / f"{name}.log"
        log = log_path.open("wb")
        popen = subprocess.Popen(
            [str(PULSE), *args], cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_default_sigint,
        )
        proc = Proc(name, popen, log_path, log)
        self.procs.append(proc)
        return proc

    def run(self, name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A short-lived command, to completion."""
        return subprocess.run(
            [str(PULSE), *args], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def check_alive(self) -> None:
        """Fail at once, naming the process, when one died that should not have (rather than timing out later)."""
        for proc in self.procs:
            if proc.popen.poll() is not None and not proc.expected_dead:
                raise AssertionError(f"{proc.name} exited with {proc.popen.returncode}")

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def dump_logs(self) -> str:
        parts = []
        for proc in self.procs:
            text = proc.log_path.read_text(errors="replace") if proc.log_path.exists() else ""
            parts.append(f"===== {proc.name} (rc={proc.popen.poll()}) {proc.log_path} =====\n{text[-LOG_TAIL_CHARS:]}")
        return "\n".join(parts)




async def sign_in(http: Any, email: str, password: str) -> None:
    """Sign in through the running API's real `POST /api/v1/auth/signin`; `http` (an httpx client) sends the
    access token from then on."""
    resp = await http.post("/api/v1/auth/signin", json={"email": email, "password": password})
    assert resp.status_code == 200, resp.text
    http.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"


def demo_admin_sign_in(log: str) -> tuple[str, str]:
    """The seeded admin's address and password as `pulse demo` prints them (its newest start's)."""
    email, password = re.findall(r"demo admin: (\S+) / (\S+)", log)[-1]
    return email, password
