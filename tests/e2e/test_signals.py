"""Long-running processes stop cleanly on SIGTERM (what systemd and container runtimes send), not only Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PULSE = str(Path(sys.executable).with_name("pulse"))


@pytest.mark.slow
@pytest.mark.parametrize("command", [["ingest", "--source", "replay"], ["worker"]])
def test_sigterm_stops_the_process_cleanly(command: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "PULSE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/db.sqlite",
           "PULSE_DATA_DIR": str(tmp_path / "var"), "PULSE_BUS_URL": "memory://"}
    subprocess.run([PULSE, "db", "upgrade"], env=env, cwd=tmp_path, check=True, capture_output=True, timeout=120)
    log = (tmp_path / "log").open("w+")
    proc = subprocess.Popen([PULSE, *command], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        marker = "market source started" if command[0] == "ingest" else "worker consumers subscribed"
        deadline = time.monotonic() + 60
        while marker not in (tmp_path / "log").read_text():
            assert proc.poll() is None, (tmp_path / "log").read_text()
            assert time.monotonic() < deadline, f"never saw {marker!r}: {(tmp_path / 'log').read_text()}"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, (tmp_path / "log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
