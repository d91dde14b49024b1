"""One set of good and bad intervals and times, fed through every path that takes them: the HTTP API (history,
backtest and paper deployment requests), the CLI (`pulse backtest run`), the bus into the market store, and the
stores' own readers. Each input is accepted everywhere or refused everywhere — the paths share `Interval.parse`
and `parse_time_ms`, and this is the test that would notice a path growing its own rules again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import orjson
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from api.serving import lifespan
from marketpulse.api.app import create_app
from marketpulse.bus import topics
from marketpulse.cli.main import app as pulse
from marketpulse.marketdata.library import CandleLibrary
from marketpulse.marketdata.store import MarketRecorder, load_candles
from marketpulse.marketdata.tables import CandleRow
from marketpulse.runtime import Runtime
from support.accounts import authorize
from support.waiting import eventually
from support.walks import random_walk

DAY0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC: the CLI's file holds three days of minutes from here
T = 1_704_153_600_000  # 2024-01-02 00:00 UTC: on every interval's boundary

GOOD_INTERVALS = ["1m", "5m", "15m", "1h", "4h", "1d"]
BAD_INTERVALS = ["7m", "2w", "1w", "3d", "1M", "1H", "60s", "0m", "1h "]
GOOD_TIMES = ["2024-01-02", "2024-01-02T00:00:00Z", "2024-01-02T01:00:00+01:00", str(T)]
BAD_TIMES = ["yesterday", "2024-13-01", "9999-12-31", "1704153600", "99999999999999999999", "-1704153600000"]
INTERVALS = [(i, True) for i in GOOD_INTERVALS] + [(i, False) for i in BAD_INTERVALS]
TIMES = [(t, True) for t in GOOD_TIMES] + [(t, False) for t in BAD_TIMES]


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(runtime)
    async with lifespan(application), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://localhost"
    ) as c:
        await authorize(c, runtime)  # backtest jobs are a signed-in user's
        # BTCUSDT must be a listed symbol, or the history endpoint answers 404 for it whatever the query says.
        await runtime.bus.publish(topics.MARKET_TICKERS, {"time": T, "rows": [
            {"symbol": "BTCUSDT", "time": T, "price": 60_000.0, "change_pct_24h": 1.0, "quote_volume_24h": 1e9}]})

        async def listed() -> bool | None:
            return (await c.get("/api/v1/market/symbol/BTCUSDT")).status_code == 200 or None

        await eventually(listed)
        yield c


@pytest.fixture(scope="module")
def minutes_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    walk = random_walk(3 * 1440, seed=5, start_ms=DAY0)
    lines = ["symbol,open_time_ms,open,high,low,close,volume"]
    lines += [f"TESTUSDT,{t},{o},{h},{lo},{c},{v}" for t, o, h, lo, c, v in zip(
        walk.time.tolist(), walk.open, walk.high, walk.low, walk.close, walk.volume, strict=True)]
    path = tmp_path_factory.mktemp("cli") / "minutes.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


# --- the paths: each answers "accepted?" and, when refusing, checks the refusal names the input's field ---------


async def api_history(client: httpx.AsyncClient, field: str, value: str) -> bool:
    resp = await client.get("/api/v1/market/history/BTCUSDT", params={field: value})
    if resp.status_code == 200:
        return True
    assert resp.status_code == 422, resp.text
    assert [e["loc"] for e in resp.json()["detail"]] == [["query", field]]
    return False


async def api_backtest(client: httpx.AsyncClient, field: str, value: str) -> bool:
    """A request whose only other fault is a data file that doesn't exist: refused for `field` or for `data`."""
    resp = await client.post("/api/v1/backtests", json={"strategy": "ema_cross", "data": "absent.csv", field: value})
    assert resp.status_code == 422, resp.text
    faulty = {e["loc"][-1] for e in resp.json()["detail"]}
    assert faulty in ({"data"}, {field}), faulty
    return faulty == {"data"}


async def api_deployment(client: httpx.AsyncClient, interval: str) -> bool:
    """A paper deployment on a symbol the market doesn't list: refused for `interval` or for `symbol`."""
    resp = await client.post("/api/v1/paper/deployments",
                             json={"strategy": "ema_cross", "symbol": "NOPEUSDT", "interval": interval})
    assert resp.status_code == 422, resp.text
    faulty = {e["loc"][-1] for e in resp.json()["detail"]}
    assert faulty in ({"symbol"}, {"interval"}), faulty
    return faulty == {"symbol"}


def cli_backtest(minutes_csv: Path, option: str, value: str) -> bool:
    args = ["backtest", "run", "-s", "ema_cross", "--data", str(minutes_csv), "--json",
            *(["--from", "2024-01-02"] if option == "--interval" else ["--interval", "1h"]), option, value]
    result = CliRunner().invoke(pulse, args)
    if result.exit_code == 0:
        return True
    assert result.exit_code == 2, result.output
    assert f"error: {option}: " in result.output, result.output
    return False


async def bus_to_store(runtime: Runtime, case: int, interval: str, open_time: int | str) -> bool:
    """The candle rides in a batch beside a good one; once the good one is stored, the batch has been handled."""
    sentinel = {"symbol": f"SENT{case}USDT", "interval": "1m", "open_time": T, "open": 1.0, "high": 1.0,
                "low": 1.0, "close": 1.0, "volume": 1.0, "quote_volume": 1.0}
    tested = {**sentinel, "symbol": f"CASE{case}USDT", "interval": interval}
    raw = (b'{"interval":"1m","candles":[' + orjson.dumps(sentinel) + b","
           + orjson.dumps(tested).replace(b'"open_time":%d' % T, b'"open_time":%s' % str(open_time).encode())
           + b"]}")
    await runtime.bus.publish(topics.MARKET_CANDLES, msgspec.Raw(raw))

    async def stored(symbol: str) -> bool:
        async with runtime.sessions() as s:
            return (await s.scalar(select(CandleRow.symbol).where(CandleRow.symbol == symbol))) is not None

    await eventually(lambda: stored(sentinel["symbol"]), what="the batch's good candle stored")
    return await stored(tested["symbol"])


async def store_readers(runtime: Runtime, library: CandleLibrary, interval: str) -> bool:
    """The SQL history and the Parquet library, asked for the interval directly."""
    outcomes = set()
    for read in (lambda: load_candles(runtime.sessions, "BTCUSDT", interval), None):
        try:
            await read() if read else library.read("binance", "BTCUSDT", interval)
            outcomes.add(True)
        except ValueError as exc:
            assert "unknown interval" in str(exc)
            outcomes.add(False)
    assert len(outcomes) == 1, outcomes
    return outcomes.pop()


# --- the tests -------------------------------------------------------------------------------------------------


async def test_intervals_are_accepted_or_refused_alike_everywhere(
    runtime: Runtime, client: httpx.AsyncClient, minutes_csv: Path, tmp_path: Path
) -> None:
    recorder = MarketRecorder(runtime)
    await recorder.start()
    library = CandleLibrary(tmp_path / "library")
    try:
        verdicts: dict[str, dict[str, bool]] = {}
        for case, (interval, good) in enumerate(INTERVALS):
            verdicts[interval] = {
                "api history": await api_history(client, "interval", interval),
                "api backtest": await api_backtest(client, "interval", interval),
                "api deployment": await api_deployment(client, interval),
                "cli backtest": cli_backtest(minutes_csv, "--interval", interval),
                "bus → store": await bus_to_store(runtime, case, interval, T),
                "store readers": await store_readers(runtime, library, interval),
            }
            assert set(verdicts[interval].values()) == {good}, (interval, verdicts[interval])
    finally:
        await recorder.stop()


async def test_times_are_accepted_or_refused_alike_everywhere(
    runtime: Runtime, client: httpx.AsyncClient, minutes_csv: Path
) -> None:
    recorder = MarketRecorder(runtime)
    await recorder.start()
    try:
        for case, (text, good) in enumerate(TIMES):
            verdict: dict[str, Any] = {
                "api history": await api_history(client, "start", text),
                "api backtest": await api_backtest(client, "from", text),
                "cli backtest": cli_backtest(minutes_csv, "--from", text),
            }
            if text.lstrip("-").isdigit():  # the bus carries times as integer ms only: the numeric inputs
                verdict["bus → store"] = await bus_to_store(runtime, 100 + case, "1m", text)
            assert set(verdict.values()) == {good}, (text, verdict)
    finally:
        await recorder.stop()
