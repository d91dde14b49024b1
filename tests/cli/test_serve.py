"""`pulse demo|api|worker|ingest` read their settings: PULSE_HOST/PORT/SOURCE are the options' defaults, an option
given wins, the demo runs as PULSE_ENV=dev, and the source chosen is the exchange label stored with candles."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from marketpulse.bus import topics
from marketpulse.cli import serve
from marketpulse.cli.main import app
from marketpulse.marketdata.store import MarketRecorder, load_candles
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings, get_settings
from support.waiting import drained

T0 = 1_760_126_400_000


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[dict[str, Any]]]:
    """What `_run` would have started (roles and settings), instead of starting it; the environment is cleared of
    the developer's PULSE_* values."""
    calls: list[dict[str, Any]] = []

    def fake_run(roles: set[str], settings: Settings, **kwargs: Any) -> None:
        calls.append({"roles": roles, "settings": settings, **kwargs})

    monkeypatch.setattr(serve, "_run", fake_run)
    for name in [n for n in os.environ if n.startswith("PULSE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env of the checkout's
    get_settings.cache_clear()
    yield calls
    get_settings.cache_clear()


def invoke(*args: str) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output


def test_host_and_port_default_to_their_settings(started: list[dict[str, Any]], monkeypatch) -> None:
    monkeypatch.setenv("PULSE_HOST", "0.0.0.0")
    monkeypatch.setenv("PULSE_PORT", "9123")
    invoke("api")
    invoke("api", "--port", "9200", "--host", "127.0.0.2")  # an option given wins over the variable
    invoke("demo")
    got = [(c["settings"].host, c["settings"].port) for c in started]
    assert got == [("0.0.0.0", 9123), ("127.0.0.2", 9200), ("0.0.0.0", 9123)]


def test_built_in_defaults_without_settings(started: list[dict[str, Any]]) -> None:
    invoke("api")
    s = started[0]["settings"]
    assert (s.host, s.port, s.source, s.env) == ("127.0.0.1", 8000, "replay", "production")


def test_source_setting_chooses_the_source(started: list[dict[str, Any]], monkeypatch) -> None:
    monkeypatch.setenv("PULSE_SOURCE", "binance")
    invoke("ingest")
    invoke("demo")
    invoke("worker")  # the worker's recorder labels candles with the same setting
    invoke("ingest", "--source", "replay")
    assert [c["settings"].source for c in started] == ["binance", "binance", "binance", "replay"]


def test_demo_runs_as_dev_and_the_others_do_not(started: list[dict[str, Any]]) -> None:
    invoke("demo", "--source", "binance")
    invoke("api")
    assert [(c["settings"].env, c["settings"].source) for c in started] == [("dev", "binance"),
                                                                            ("production", "replay")]


@pytest.mark.parametrize(("env", "key", "refused"), [
    ("production", "dev-ingest-key", True), ("dev", "dev-ingest-key", False), ("production", "my-own-secret", False),
])
def test_the_built_in_ingest_key_is_refused_outside_dev(env: str, key: str, refused: bool, capsys) -> None:
    settings = Settings(env=env, ingest_api_key=key)
    if not refused:
        serve.check_ingest_key(settings)
        return
    with pytest.raises(typer.Exit) as raised:
        serve.check_ingest_key(settings)
    assert raised.value.exit_code == 2
    err = capsys.readouterr().err
    assert "PULSE_INGEST_API_KEY" in err and "PULSE_ENV=dev" in err and len(err.strip().splitlines()) == 1


async def test_demo_with_binance_stores_candles_labelled_binance(settings: Settings, clock) -> None:
    """`pulse demo --source binance`: the recorder in the same process stores what it records as binance."""
    from marketpulse.bus.memory import MemoryBus

    chosen = settings.model_copy(update={"source": "binance"})
    runtime = Runtime.open(chosen, clock=clock, bus=MemoryBus())
    recorder = MarketRecorder(runtime)
    await recorder.start()
    try:
        candle = {"symbol": "BTCUSDT", "interval": "1m", "open_time": T0, "open": 1.0, "high": 2.0, "low": 0.5,
                  "close": 1.5, "volume": 10.0, "quote_volume": 15.0, "closed": True}
        await runtime.bus.publish(topics.MARKET_CANDLES, {"interval": "1m", "candles": [candle]})
        await drained(runtime.bus)
        assert len(await load_candles(runtime.sessions, "BTCUSDT", "1m", exchange="binance")) == 1
        assert await load_candles(runtime.sessions, "BTCUSDT", "1m", exchange="replay") == []
    finally:
        await recorder.stop()
        await runtime.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0.0.0.0"])
def test_a_taken_port_is_found_on_every_address_the_host_means(host: str, capsys) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(typer.Exit) as raised:
            serve.check_port_free(host, port)
    assert raised.value.exit_code == 2
    assert capsys.readouterr().err == f"error: port {port} is in use: pass --port or set PULSE_PORT\n"


def test_a_free_port_passes_and_an_unknown_host_is_named(capsys) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serve.check_port_free("127.0.0.1", port)  # nobody listens: no exit
    with pytest.raises(typer.Exit):
        serve.check_port_free("no-such-host.invalid", port)
    assert "no-such-host.invalid" in capsys.readouterr().err
