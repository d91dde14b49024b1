"""The replay source: history on start, closed-by-t candles, ticks inside the minute, OI every 5 minutes,
determinism, the cascade in the demo window, and synthetic continuation past the sample."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np
import pytest

from marketpulse.bus import DeadLetter, EventBus, Handler, Subscription, topics
from marketpulse.bus.topics import Topic
from marketpulse.clock import FakeClock, ScaledClock
from marketpulse.marketdata.models import MarketRow
from marketpulse.marketdata.replay import ReplayPlayer, ReplaySource, ReplayTape, replay_start_ms
from marketpulse.marketdata.sample import CASCADE_HOUR_MS, btcusdt_spot_1m_path, usdm_perp_1h_path
from marketpulse.settings import Settings
from support.topics import plain
from support.waiting import parked

MINUTE = 60_000
HOUR = 3_600_000
DEMO_START = CASCADE_HOUR_MS - 20 * MINUTE  # 2025-10-10 20:40 UTC
CANDLE_KEYS = {"symbol", "interval", "open_time", "open", "high", "low", "close", "volume", "quote_volume", "closed"}
ROW_KEYS = set(MarketRow.__struct_fields__)


class RecordingBus(EventBus):
    """Remembers every publish with the market time it happened at."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock
        self.published: list[tuple[int, Topic[Any], dict[str, Any]]] = []

    async def publish(self, topic: Topic[Any], data: Any) -> str:
        self.published.append((self.clock.now_ms() if self.clock else 0, topic, msgspec.to_builtins(data)))
        return str(len(self.published))

    async def subscribe(self, topic: Topic[Any], group: str, handler: Handler[Any], *, consumer: str | None = None,
                        ephemeral: bool = False) -> Subscription:
        raise NotImplementedError

    async def dead_letters(self, topic: Topic[Any], count: int = 100) -> list[DeadLetter]:
        return []

    async def first_time(self, key: str, ttl_ms: int) -> bool:
        raise NotImplementedError

    async def forget_key(self, key: str) -> None:
        raise NotImplementedError

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def tape() -> ReplayTape:
    return ReplayTape.load(usdm_perp_1h_path(), symbols=60, seed=7)


def settings(**overrides: Any) -> Settings:
    return Settings(replay_symbols=60, **overrides)


def test_tape_plays_the_most_liquid_symbols(tape: ReplayTape) -> None:
    assert len(tape.symbols) == 60
    assert set(tape.symbols[:2]) == {"BTCUSDT", "ETHUSDT"}
    assert not any(s.startswith("SYN") for s in tape.symbols)


def test_default_start_is_just_before_the_cascade(tape: ReplayTape) -> None:
    assert tape.strongest_hour_ms() == CASCADE_HOUR_MS
    assert replay_start_ms(settings(), tape) == DEMO_START
    explicit = settings(replay_start=datetime(2025, 10, 8, 12, 0, tzinfo=UTC))
    assert replay_start_ms(explicit, tape) == 1_759_924_800_000
    with pytest.raises(ValueError, match="replay_start"):
        replay_start_ms(settings(replay_start=datetime(2025, 10, 7, 0, 30, tzinfo=UTC)), tape)


def test_start_publishes_the_previous_hour_and_this_hour_so_far(tape: ReplayTape) -> None:
    events = plain(ReplayPlayer(tape).start(DEMO_START))
    candles = [data for topic, data in events if topic == topics.MARKET_CANDLES]
    opens = [data["candles"][0]["open_time"] for data in candles]
    # 19:00-19:59 complete and 20:00-20:39: 100 closed minutes, oldest first, one message per minute
    assert opens == list(range(CASCADE_HOUR_MS - 2 * HOUR, DEMO_START, MINUTE))
    for data in candles:
        assert data["interval"] == "1m"
        listed = {sym for sym, series in tape.series.items() if series.first_ms <= data["candles"][0]["open_time"]}
        assert {c["symbol"] for c in data["candles"]} == listed  # everything trading then, nothing before listing
        assert all(set(c) == CANDLE_KEYS and c["closed"] is True for c in data["candles"])
    assert events[-1][0] == topics.MARKET_TICKERS and events[-1][1]["time"] == DEMO_START
    assert any(topic == topics.MARKET_OPEN_INTEREST for topic, _ in events)


async def run_replay(source: ReplaySource, clock: FakeClock, bus: RecordingBus, until_ms: int,
                     step_ms: int = 5_000) -> None:
    """Drive the source with a FakeClock: advance, then wait until the source sleeps on the clock again, i.e. has
    published everything due by then (no sleeping, no counting event-loop turns)."""
    task = asyncio.create_task(source.run(bus))
    try:
        await parked(clock, task)
        while clock.now_ms() < until_ms:
            clock.advance(step_ms)
            await parked(clock, task)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_run_publishes_closed_candles_ticks_and_open_interest_in_order(tape: ReplayTape) -> None:
    clock = FakeClock(DEMO_START + 7_000)
    bus = RecordingBus(clock)
    source = ReplaySource(settings(), clock=clock, tape=tape)
    assert source.name == "replay" and source.clock is clock
    await run_replay(source, clock, bus, DEMO_START + 12 * MINUTE)

    live = [(t, topic, data) for t, topic, data in bus.published if t > DEMO_START + 7_000]
    candle_times = [data["candles"][0]["open_time"] for _, topic, data in live if topic == topics.MARKET_CANDLES]
    assert candle_times == list(range(DEMO_START, DEMO_START + 12 * MINUTE, MINUTE))  # every minute, in order
    for t, topic, data in live:
        if topic == topics.MARKET_CANDLES:
            # closed by t: published at the first moment the minute is over, never before
            assert all(c["open_time"] + MINUTE <= t < c["open_time"] + 2 * MINUTE for c in data["candles"])
    oi_times = [data["asOf"] for _, topic, data in live if topic == topics.MARKET_OPEN_INTEREST]
    assert oi_times == [DEMO_START + 5 * MINUTE, DEMO_START + 10 * MINUTE]
    tick_times = [data["time"] for _, topic, data in live if topic == topics.MARKET_TICKERS]
    assert tick_times == sorted(set(tick_times))
    per_minute = defaultdict(int)
    for t in tick_times:
        per_minute[t // MINUTE] += 1
    per_minute.pop(min(per_minute)), per_minute.pop(max(per_minute))  # the partial first and last minutes
    assert min(per_minute.values()) >= 3  # several ticks every market minute
    # at a 5-minute mark: candles of the minute that closed, then OI, then the tickers of that instant
    mark = DEMO_START + 5 * MINUTE
    order = [(topic, data.get("asOf", data.get("time"))) for _, topic, data in live
             if topic != topics.MARKET_LIQUIDATIONS
             and (topic != topics.MARKET_CANDLES or data["candles"][0]["open_time"] == mark - MINUTE)]
    i = order.index((topics.MARKET_CANDLES, None))
    assert order[i + 1] == (topics.MARKET_OPEN_INTEREST, mark) and order[i + 2] == (topics.MARKET_TICKERS, mark)


async def test_ticks_move_inside_the_current_minute_candle(tape: ReplayTape) -> None:
    player = ReplayPlayer(tape)
    player.start(DEMO_START)
    minutes = {}
    for k in range(1, 4 * 10):
        t = DEMO_START + k * 15_000
        for topic, data in plain(player.advance(t)):
            if topic == topics.MARKET_CANDLES:
                for c in data["candles"]:
                    minutes[(c["symbol"], c["open_time"])] = c
            elif topic == topics.MARKET_TICKERS:
                assert data["time"] == t
                for row in data["rows"]:
                    assert set(row) == ROW_KEYS
                    assert row["funding_rate"] is not None and row["open_interest_usd"] > 0
                    bar = tape.minute_bars(row["symbol"], t // HOUR * HOUR)
                    assert bar is not None
                    m = (t % HOUR) // MINUTE
                    assert bar.low[m] <= row["price"] <= bar.high[m]
    # every published candle equals the minute the ticks were moving in
    for (symbol, open_time), c in minutes.items():
        bar = tape.minute_bars(symbol, open_time // HOUR * HOUR)
        assert bar is not None and c["close"] == bar.close[(open_time % HOUR) // MINUTE]


def test_24h_quote_volume_is_the_sum_of_the_trailing_minutes(tape: ReplayTape) -> None:
    t = DEMO_START  # a minute boundary: the window is exactly the 1440 closed minutes before t
    for ticker in tape.tickers(t)[:5]:
        total = 0.0
        for hour in range(t // HOUR * HOUR - 24 * HOUR, t, HOUR):
            bars = tape.minute_bars(ticker.symbol, hour)
            assert bars is not None
            first = max(0, (t - 24 * HOUR - hour) // MINUTE)
            last = min(60, (t - hour) // MINUTE)
            total += float(np.sum(bars.quote_volume[first:last]))
        assert ticker.quote_volume == pytest.approx(total, rel=1e-9)
        bars_day_ago = tape.minute_bars(ticker.symbol, t // HOUR * HOUR - 24 * HOUR)
        assert bars_day_ago is not None
        assert ticker.open_price == bars_day_ago.open[(t % HOUR) // MINUTE]
        assert ticker.change_pct == pytest.approx((ticker.last_price / ticker.open_price - 1) * 100, abs=1e-3)


def test_replay_is_deterministic() -> None:
    def play() -> list[Any]:
        fresh = ReplayTape.load(usdm_perp_1h_path(), symbols=20, seed=7)
        player = ReplayPlayer(fresh)
        events = player.start(DEMO_START + 3_000)
        for k in range(1, 40):
            events += player.advance(DEMO_START + k * 15_000)
        return events

    first = play()
    # An empty play would be trivially "deterministic": demand history, candles and ticks in it.
    assert len(first) > 40
    assert {topic for topic, _ in first} >= {topics.MARKET_TICKERS, topics.MARKET_CANDLES}
    assert first == play()


def test_the_cascade_hour_is_a_spike_in_the_demo_window(tape: ReplayTape) -> None:
    """Without the detector: from the published 1m candles, 2 real minutes at 60× (20:40 → 22:40) contain an
    hour with ≥3× the previous hour's quote volume and ≥ $3M for many symbols, reached by a 5-minute scan."""
    player = ReplayPlayer(tape)
    events = player.start(DEMO_START)
    for k in range(1, 120 * 4 + 1):
        events += player.advance(DEMO_START + k * 15_000)
    volume: dict[tuple[str, int], list[tuple[int, float]]] = defaultdict(list)
    for topic, data in plain(events):
        if topic == topics.MARKET_CANDLES:
            for c in data["candles"]:
                volume[(c["symbol"], c["open_time"] // HOUR * HOUR)].append((c["open_time"], c["quote_volume"]))
    prev_hour, hour = CASCADE_HOUR_MS - HOUR, CASCADE_HOUR_MS
    spiking, first_scans = [], []
    listed = [symbol for symbol, series in tape.series.items() if series.first_ms <= prev_hour]
    for symbol in listed:
        previous = sum(q for _, q in volume[(symbol, prev_hour)])
        current = volume[(symbol, hour)]
        assert len(current) == 60 and len(volume[(symbol, prev_hour)]) == 60
        if sum(q for _, q in current) >= 3 * previous and sum(q for _, q in current) >= 3e6:
            spiking.append(symbol)
        # the detector's view: scans at 21:05 … 21:55 see the candles closed by then
        first_scan = next((scan for scan in range(hour + 5 * MINUTE, hour + HOUR, 5 * MINUTE)
                           if (seen := sum(q for t, q in current if t + MINUTE <= scan)) >= 3 * previous
                           and seen >= 3e6), None)
        if first_scan is not None:
            first_scans.append(first_scan)
    assert len(listed) >= 50
    assert len(spiking) >= len(listed) // 2
    assert len(first_scans) >= len(listed) // 4
    assert min(first_scans) <= hour + 30 * MINUTE  # 50 market minutes after the start: 50 s at 60×


def test_replay_continues_synthetically_after_the_sample() -> None:
    tape = ReplayTape.load(usdm_perp_1h_path(), symbols=5, seed=7)
    btc = tape.series["BTCUSDT"]
    end = btc.real_end_ms
    last_real_close = float(btc.frame.close[(end - HOUR - btc.first_ms) // HOUR])
    player = ReplayPlayer(tape)
    events = player.start(end - 30 * MINUTE)
    for k in range(1, 4 * 90):
        events += player.advance(end - 30 * MINUTE + k * 15_000)
    btc_candles = [c for topic, data in plain(events) if topic == topics.MARKET_CANDLES
                   for c in data["candles"] if c["symbol"] == "BTCUSDT"]
    times = [c["open_time"] for c in btc_candles]
    assert times == sorted(times) and times[-1] > end + 30 * MINUTE  # market time never jumps back
    first_synthetic = next(c for c in btc_candles if c["open_time"] == end)
    assert first_synthetic["open"] == last_real_close
    assert all(c["volume"] > 0 for c in btc_candles)
    later = tape.tickers(end + 10 * 24 * HOUR)  # far beyond: still a market
    assert {t.symbol for t in later} == set(tape.symbols)


def test_more_symbols_than_the_file_adds_synthetic_ones() -> None:
    tape = ReplayTape.load(btcusdt_spot_1m_path(), symbols=3, seed=7)
    assert tape.symbols == ["BTCUSDT", "SYN001USDT", "SYN002USDT"]
    btc = tape.series["BTCUSDT"]
    assert len(btc.frame) == 72 and btc.real_end_ms == 1_760_227_200_000  # three days of minutes → hours
    assert tape.closed_minute(1_760_000_000_000 // HOUR * HOUR)[2].symbol == "SYN002USDT"


def test_source_defaults_to_a_scaled_clock_at_the_replay_speed(tape: ReplayTape) -> None:
    source = ReplaySource(settings(replay_speed=120), tape=tape)
    assert isinstance(source.clock, ScaledClock) and source.clock.speed == 120
    assert source.start_ms == DEMO_START and source.clock.now_ms() >= DEMO_START  # market time starts there


def test_the_replay_synthesizes_liquidations_from_its_candles(tape: ReplayTape) -> None:
    """Longs are liquidated on sharp drops, shorts on sharp rises, sized by volume; each minute's come right after
    its candles, inside that minute, along its move; quiet minutes have none; the cascade hour has the most."""
    player = ReplayPlayer(tape)
    events = plain(player.start(CASCADE_HOUR_MS + 59 * MINUTE))  # 20:00-21:58 closed: calm, then the cascade
    usd_by_hour: dict[int, float] = defaultdict(float)
    candles_of: dict[int, dict[str, dict[str, Any]]] = {}
    last_candles: dict[str, dict[str, Any]] = {}
    seen = 0
    for topic, data in events:
        if topic == topics.MARKET_CANDLES:
            last_candles = {c["symbol"]: c for c in data["candles"]}
            candles_of[data["candles"][0]["open_time"]] = last_candles
        if topic != topics.MARKET_LIQUIDATIONS:
            continue
        for liq in data["liquidations"]:
            seen += 1
            candle = last_candles[liq["symbol"]]  # published right after the candles of its minute
            assert candle["open_time"] <= liq["time"] < candle["open_time"] + MINUTE
            assert candle["low"] <= liq["price"] <= candle["high"]
            falling = candle["close"] < candle["open"]
            assert liq["side"] == ("long" if falling else "short")
            assert liq["usd"] == pytest.approx(liq["price"] * liq["quantity"], abs=0.006)  # in cents
            assert 0 < liq["usd"] <= candle["quote_volume"]
            usd_by_hour[liq["time"] // HOUR * HOUR] += liq["usd"]
    assert seen > 100
    assert usd_by_hour[CASCADE_HOUR_MS] > 5 * usd_by_hour[CASCADE_HOUR_MS - HOUR]
    cascade = [liq for topic, data in events if topic == topics.MARKET_LIQUIDATIONS for liq in data["liquidations"]
               if liq["time"] >= CASCADE_HOUR_MS]
    assert sum(liq["usd"] for liq in cascade if liq["side"] == "long") > 2 * sum(
        liq["usd"] for liq in cascade if liq["side"] == "short")  # a crash liquidates longs above all
    again = plain(ReplayPlayer(tape).start(CASCADE_HOUR_MS + 59 * MINUTE))
    assert [d for t, d in again if t == topics.MARKET_LIQUIDATIONS] == [
        d for t, d in events if t == topics.MARKET_LIQUIDATIONS]  # deterministic
