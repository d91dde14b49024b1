"""`pulse demo` and `pulse detect spikes` as a user runs them: real OS processes, nothing but files and HTTP.

The demo is started the way `make run` does (SQLite file, in-process bus, replay), in a temporary working directory
with its database and data directory there too, so it can't touch ./var of the clone.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.support import Processes, eventually, free_port
from marketpulse.marketdata.sample import usdm_perp_1h_path

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

CASCADE_HOUR_MS = int(datetime(2025, 10, 10, 21, tzinfo=UTC).timestamp() * 1000)


async def test_demo_serves_table_alerts_pages_and_metrics(processes: Processes, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    processes.env.update(
        PULSE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
        PULSE_DATA_DIR=str(data_dir),
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    demo = processes.start("demo", "demo", "--port", str(port))

    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        async def ready() -> bool:
            return (await http.get("/health/ready")).status_code == 200

        await eventually(ready, deadline_s=120, what="/health/ready 200", check=processes.check_alive)

        async def table() -> list[dict[str, Any]] | None:
            # Anonymous: the free plan's view, its top 50 symbols by volume (the replay has hundreds).
            rows: list[dict[str, Any]] = (await http.get("/api/v1/market/data")).json()["data"]
            return rows if len(rows) == 50 else None

        rows = await eventually(table, deadline_s=120, what="the free view's 50 market rows",
                                check=processes.check_alive)
        assert all(row["symbol"].endswith("USDT") and row["price"] > 0 for row in rows), rows[0]

        async def alerts() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = (await http.get("/api/v1/volume-alerts")).json()["data"]
            return found

        found = await eventually(alerts, deadline_s=120, what="a volume alert", check=processes.check_alive)
        spike = found[0]  # the newest: the free view lists 10, and the replay adds alerts meanwhile
        assert spike["currentVolume"] >= 3 * spike["previousVolume"] > 0, spike
        # "The last hour" counts back from the replay's market clock (2025), not the wall clock.
        recent = (await http.get("/api/v1/volume-alerts/recent", params={"hours": 1})).json()["data"]
        assert spike["id"] in {a["id"] for a in recent}, recent

        page = await http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<table id="market"' in page.text

        docs = await http.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        schema = (await http.get("/openapi.json")).json()
        assert "/api/v1/market/data" in schema["paths"] and "/api/v1/volume-alerts" in schema["paths"]

        metrics = await http.get("/metrics")
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
        assert "# TYPE" in metrics.text and "# HELP" in metrics.text

    # Everything the demo writes stays under its data directory and the given database (nothing in ./var).
    assert (tmp_path / "demo.db").exists()
    assert not (tmp_path / "var").exists()
    # Ctrl-C stops it cleanly (the README's "Ctrl-C stops"): a zero exit, within the stop's grace period.
    assert demo.alive()
    demo.stop()
    assert demo.popen.returncode == 0, demo.log_text()[-3000:]


def test_detect_spikes_over_the_bundled_sample(processes: Processes) -> None:
    sample = usdm_perp_1h_path()
    done = processes.run("detect", "detect", "spikes", "--klines", str(sample))
    assert done.returncode == 0, done.stderr
    alerts = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert alerts
    assert all(a["alertType"] == "SPIKE" for a in alerts)  # hourly candles: each hour once, SPIKE only
    cascade = [a for a in alerts if a["hourTimestamp"] == CASCADE_HOUR_MS]
    # The 2025-10-10 21:00 UTC liquidation cascade: most of the market traded ≥ 3× its previous hour.
    assert len(cascade) >= 50, len(cascade)
    assert all(a["volumeRatio"] >= 3 and a["currentVolume"] >= 3_000_000 for a in cascade)
    times = [a["timestamp"] for a in alerts]
    assert times == sorted(times)


def test_detect_spikes_on_a_missing_file_names_it(processes: Processes, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-klines.csv.gz"
    done = processes.run("detect", "detect", "spikes", "--klines", str(missing))
    assert done.returncode != 0
    assert str(missing) in done.stderr + done.stdout
    assert not done.stdout.strip().startswith("{")
