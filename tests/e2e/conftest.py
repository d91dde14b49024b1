"""Fixtures for the end-to-end tests: a `Processes` set stopped at teardown, logs printed when a test failed."""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from e2e.support import Processes


@pytest.fixture
def processes(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Processes]:
    """A `Processes` whose env is this interpreter's plus what the test sets; all stopped at teardown, and
    their logs printed when the test failed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}  # the developer's .env values stay out
    env["PYTHONUNBUFFERED"] = "1"
    env["PULSE_JWT_SECRET_KEY"] = "e2e-jwt-secret-of-32-bytes-or-more"  # `pulse api` refuses the built-in one
    # These tests poll the API from one address for minutes (twice a second, several calls a poll), as a load test
    # would: past the anonymous plan's 100 a minute. The limits themselves are proven in tests/ratelimit/.
    env["PULSE_RATE_LIMITS"] = "off"
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    procs = Processes(log_dir, env, tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()
        report = getattr(request.node, "rep_call", None)
        if report is None or report.failed:
            print(procs.dump_logs(), file=sys.stderr)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Expose each phase's report on the item so the fixture above knows whether the test failed.
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
