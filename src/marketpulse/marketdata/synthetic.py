"""The seeded synthetic market (pure: no I/O, no clocks). Everything is a function of (seed, symbol, time).

It fills what the bundled real sample lacks:
- minutes inside an hourly candle (`synthesize_minutes`): a price path open → first extreme → second extreme →
  close and the hour's volume spread over the minutes, aggregating back to the hour *exactly*;
- funding and open interest (`synthesize_derivatives`), which the sample does not carry;
- hours beyond the sample and symbols beyond it (`synthetic_hours`, `synthetic_universe`): heavy-tailed returns,
  UTC hour-of-day volume seasonality with a weekend dip, and occasional genuine volume surges.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from marketpulse.marketdata.frame import F64, I64, CandleFrame
from marketpulse.marketdata.intervals import DAY_MS, HOUR_MS, MINUTE_MS
from marketpulse.marketdata.models import Candle

MINUTES_PER_HOUR = 60

# Relative volume by UTC hour (mean 1): quiet late US/early Asia, a lift at the Asian and European opens, the peak
# when US equities open (13:30-16:00 UTC). Shape read off typical Binance futures hourly volume.
_HOUR_OF_DAY = np.array([
    1.00, 0.95, 0.85, 0.75, 0.70, 0.68, 0.72, 0.80, 0.92, 0.98, 0.96, 0.95,
    1.02, 1.15, 1.38, 1.42, 1.30, 1.18, 1.08, 1.04, 1.06, 1.00, 0.98, 1.00,
])
HOUR_OF_DAY_VOLUME: F64 = _HOUR_OF_DAY / _HOUR_OF_DAY.mean()
WEEKEND_VOLUME = 0.65  # Saturday and Sunday trade about two thirds of a weekday

BASE_FUNDING_RATE = 0.0001  # 0.01% per 8 hours, Binance's default premium-free rate
MAX_FUNDING_RATE = 0.003
SURGE_PROBABILITY = 0.004  # per symbol-hour: about one genuine surge per symbol every ten days


def symbol_rng(seed: int, symbol: str, *stream: int) -> np.random.Generator:
    """A generator for one (seed, symbol, stream…): independent of which other symbols or hours are generated."""
    return np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(symbol.encode("utf-8")), *stream])


def volume_seasonality(open_times_ms: I64) -> F64:
    """Volume multiplier for each hour: the UTC hour-of-day profile, times the weekend dip."""
    hours = (open_times_ms // HOUR_MS) % 24
    weekday = (open_times_ms // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday: 0 = Monday
    return HOUR_OF_DAY_VOLUME[hours] * np.where(weekday >= 5, WEEKEND_VOLUME, 1.0)


def split_exactly(total: float, weights: F64) -> F64:
    """Split `total` in proportion to `weights` into parts whose sum is `total` exactly, in any summation order.

    Every part is an integer multiple of the last bit of `total`'s mantissa, so every partial sum is an integer
    below 2**53 times a power of two: representable, hence exact, whether summed left to right, pairwise or fsum.
    """
    parts = np.zeros(len(weights))
    if total <= 0 or not len(weights):
        return parts
    mantissa, exponent = math.frexp(total)
    units = int(mantissa * 2**53)
    unit = math.ldexp(1.0, exponent - 53)
    share = np.maximum(weights, 0) / max(float(np.sum(np.maximum(weights, 0))), 1e-300)
    counts = [int(x) for x in np.floor(share * units)]
    counts[int(np.argmax(share))] += units - sum(counts)  # the rounding remainder goes to the biggest part
    return np.array([c * unit for c in counts])


def round_price(values: F64, precision: int) -> F64:
    return np.round(values, precision)


# --- minutes inside an hour ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MinuteBars:
    """The 60 one-minute candles of one hourly candle, as columns."""

    symbol: str
    hour_ms: int
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    quote_volume: F64

    def candle(self, minute: int) -> Candle:
        return Candle(
            self.symbol, "1m", self.hour_ms + minute * MINUTE_MS, float(self.open[minute]), float(self.high[minute]),
            float(self.low[minute]), float(self.close[minute]), float(self.volume[minute]),
            float(self.quote_volume[minute]),
        )

    def candles(self) -> list[Candle]:
        return [self.candle(m) for m in range(MINUTES_PER_HOUR)]


def synthesize_minutes(hour: Candle, *, seed: int, precision: int = 8) -> MinuteBars:
    """The hour's minutes: first/last/max/min prices and the volume sums equal the hourly candle's exactly.

    The path visits the low before the high in a rising hour and the high first in a falling one, so the hour
    reads as the move it was; volume follows the size of each minute's move on top of a top-of-the-hour profile.
    """
    rng = symbol_rng(seed, hour.symbol, hour.open_time // MINUTE_MS)
    closes = _minute_closes(hour, rng, precision)
    opens = np.concatenate(([hour.open], closes[:-1]))
    highs, lows = _minute_wicks(hour, opens, closes, rng, precision)
    weights = _minute_volume_weights(hour, opens, closes, rng)
    volume = split_exactly(hour.volume, weights)
    typical = (highs + lows + closes) / 3
    quote = split_exactly(hour.quote_volume, volume * typical if hour.volume > 0 else weights)
    return MinuteBars(hour.symbol, hour.open_time, opens, highs, lows, closes, volume, quote)


def _minute_closes(hour: Candle, rng: np.random.Generator, precision: int) -> F64:
    rising = hour.close >= hour.open
    first, second = (hour.low, hour.high) if rising else (hour.high, hour.low)
    # Minutes whose close touches the extremes; minute 59 closes the hour.
    t1 = int(rng.integers(0, MINUTES_PER_HOUR - 2))
    t2 = int(rng.integers(t1 + 1, MINUTES_PER_HOUR - 1))
    anchor_at = np.array([-1, t1, t2, MINUTES_PER_HOUR - 1])
    anchor_price = np.array([hour.open, first, second, hour.close])
    minutes = np.arange(MINUTES_PER_HOUR)
    line = np.interp(minutes, anchor_at, anchor_price)
    wiggle = _bridge_noise(anchor_at, rng) * (hour.high - hour.low) * 0.12
    # A wiggle past an extreme is reflected back into the range instead of clipped to it: clipping parked every
    # minute that overshot on the extreme itself (open = low = close, minute after minute), so orders filled at
    # exactly that price. Reflected, the path meets an extreme only at its anchor and bounces off it elsewhere.
    closes = np.clip(round_price(reflect(line + wiggle, hour.low, hour.high), precision), hour.low, hour.high)
    closes[anchor_at[1:]] = anchor_price[1:]  # exact, unrounded anchors
    return closes


def reflect(values: F64, low: float, high: float) -> F64:
    """`values` folded into [low, high] as a ball bounces off both walls (a flat range: all `low`)."""
    span = high - low
    if span <= 0:
        return np.full_like(values, low)
    folded = np.mod(values - low, 2 * span)
    return low + np.where(folded > span, 2 * span - folded, folded)


def squash(delta: F64, room_up: F64, room_down: F64) -> F64:
    """`delta` bent smoothly to stay strictly inside (-room_down, room_up): ≈ delta while small against the room."""
    up = np.maximum(room_up, 0.0)
    down = np.maximum(room_down, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        above = np.where(up > 0, up * np.tanh(delta / np.where(up > 0, up, 1.0)), 0.0)
        below = np.where(down > 0, down * np.tanh(delta / np.where(down > 0, down, 1.0)), 0.0)
    return np.where(delta >= 0, above, below)


def _bridge_noise(anchor_at: I64, rng: np.random.Generator) -> F64:
    """Brownian-bridge wiggle that is zero at every anchor, so the path still passes through them."""
    noise = np.zeros(MINUTES_PER_HOUR)
    for left, right in zip(anchor_at[:-1], anchor_at[1:], strict=True):
        steps = int(right - left)
        walk = np.cumsum(rng.standard_normal(steps)) / math.sqrt(max(steps, 1))
        walk -= np.linspace(1 / steps, 1.0, steps) * walk[-1]
        noise[left + 1 : right + 1] = walk
    return noise


def _minute_wicks(
    hour: Candle, opens: F64, closes: F64, rng: np.random.Generator, precision: int
) -> tuple[F64, F64]:
    span = hour.high - hour.low
    body_top, body_bottom = np.maximum(opens, closes), np.minimum(opens, closes)
    # Wicks bend into the room up to the hour's extremes as the path does: they reach an extreme only by rounding.
    up = squash(np.abs(rng.standard_normal(MINUTES_PER_HOUR)) * span * 0.03, hour.high - body_top, body_top)
    down = squash(-np.abs(rng.standard_normal(MINUTES_PER_HOUR)) * span * 0.03, body_top, body_bottom - hour.low)
    highs = np.maximum(np.clip(round_price(body_top + up, precision), hour.low, hour.high), body_top)
    lows = np.minimum(np.clip(round_price(body_bottom + down, precision), hour.low, hour.high), body_bottom)
    return highs, lows


def _minute_volume_weights(hour: Candle, opens: F64, closes: F64, rng: np.random.Generator) -> F64:
    minutes = np.arange(MINUTES_PER_HOUR)
    # Orders cluster at the top of the hour (bots, funding checks) and a little before its close.
    profile = 1.0 + 0.6 * np.exp(-minutes / 4.0) + 0.2 * np.exp(-(MINUTES_PER_HOUR - 1 - minutes) / 3.0)
    moves = np.abs(closes - opens)
    activity = 0.3 + 1.7 * moves / max(float(np.mean(moves)), 1e-12)  # the busy minutes are the ones that move
    return profile * activity * rng.lognormal(0.0, 0.35, MINUTES_PER_HOUR)


def tick_price(o: float, h: float, lo: float, c: float, fraction: float) -> float:
    """A price inside a minute at `fraction` ∈ [0, 1): open → low → high → close if rising, high first if falling."""
    first, second = (lo, h) if c >= o else (h, lo)
    x = fraction * 3  # plain arithmetic, not np.interp: this runs for every symbol on every tick
    if x < 1:
        return o + (first - o) * x
    if x < 2:
        return first + (second - first) * (x - 1)
    return second + (c - second) * min(x - 2, 1.0)


# --- funding and open interest ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Derivatives:
    """Per hourly candle: the funding rate (per 8 h) and open interest in contracts."""

    funding_rate: F64
    open_interest_contracts: F64


def synthesize_derivatives(
    frame: CandleFrame, *, seed: int, start_funding: float | None = None, start_contracts: float | None = None
) -> Derivatives:
    """Funding around 0.01%/8h drifting with the trend; open interest that follows price and its own slow trend,
    and is flushed by liquidations (big volume on a big move). Pass the previous values to continue a series."""
    n = len(frame)
    if not n:
        return Derivatives(np.zeros(0), np.zeros(0))
    rng = symbol_rng(seed, frame.symbol, 1, int(frame.time[0]) // HOUR_MS)
    returns = np.log(frame.close / frame.open)
    quote = frame.volume * frame.close
    typical_quote = float(np.median(quote)) or 1.0
    funding = np.empty(n)
    contracts = np.empty(n)
    drift = 0.0
    f = BASE_FUNDING_RATE if start_funding is None else start_funding
    # Open interest sits around twelve typical hours of volume (BTC: ~$10B OI vs ~$1B an hour).
    k = 12 * typical_quote / frame.close[0] * rng.lognormal(0, 0.3) if start_contracts is None else start_contracts
    for i in range(n):
        # Longs pay more after rises, shorts after falls: a -10% hour moves funding by about -0.03%.
        f = BASE_FUNDING_RATE + 0.93 * (f - BASE_FUNDING_RATE) + 0.003 * returns[i] + rng.normal(0, 0.00002)
        funding[i] = min(max(f, -MAX_FUNDING_RATE), MAX_FUNDING_RATE)
        drift = 0.98 * drift + rng.normal(0, 0.0006)
        flush = 0.5 * abs(returns[i]) if quote[i] > 4 * typical_quote else 0.0
        k *= math.exp(drift + rng.normal(0, 0.003) + 0.3 * returns[i] - flush)
        contracts[i] = k
    return Derivatives(funding, contracts)


# --- hours and symbols beyond the sample -----------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticSpec:
    """What a synthetic series looks like: where it starts and its typical size and volatility."""

    symbol: str
    start_price: float
    hourly_quote_volume: float  # typical USDT per hour before seasonality
    hourly_volatility: float  # standard deviation of hourly log returns
    precision: int


def synthetic_hours(spec: SyntheticSpec, start_ms: int, hours: int, *, seed: int) -> CandleFrame:
    """`hours` hourly candles from `start_ms` (an hour boundary), opening at `spec.start_price`."""
    rng = symbol_rng(seed, spec.symbol, 2, start_ms // HOUR_MS)
    times = start_ms + np.arange(hours, dtype=np.int64) * HOUR_MS
    surge = _surges(rng, hours)
    # Student-t with 3 degrees of freedom has variance 3: rescale to the wanted volatility, keep the fat tails.
    returns = rng.standard_t(3, hours) / math.sqrt(3) * spec.hourly_volatility * np.where(surge > 1, 2.5, 1.0)
    tick = 10.0**-spec.precision
    closes = np.maximum(round_price(spec.start_price * np.exp(np.cumsum(returns)), spec.precision), tick)
    opens = np.concatenate(([spec.start_price], closes[:-1]))
    top, bottom = np.maximum(opens, closes), np.minimum(opens, closes)
    wick = np.abs(rng.standard_normal((2, hours))) * spec.hourly_volatility * 0.6
    highs = np.maximum(round_price(top * np.exp(wick[0]), spec.precision), top)
    lows = np.maximum(np.minimum(round_price(bottom * np.exp(-wick[1]), spec.precision), bottom), tick / 2)
    activity = 1.0 + 0.5 * np.abs(returns) / spec.hourly_volatility
    quote = spec.hourly_quote_volume * volume_seasonality(times) * rng.lognormal(0, 0.3, hours) * activity * surge
    volume = quote / ((highs + lows + closes) / 3)
    return CandleFrame(times, opens, highs, lows, closes, volume, spec.symbol, "1h")


def _surges(rng: np.random.Generator, hours: int) -> F64:
    """Volume multipliers: mostly 1; a genuine surge is 4-15× for an hour, fading over the next two."""
    multiplier = np.ones(hours)
    for start in np.flatnonzero(rng.random(hours) < SURGE_PROBABILITY):
        size = rng.uniform(4.0, 15.0)
        for offset, fade in enumerate((1.0, 0.45, 0.2)):
            if start + offset < hours:
                multiplier[start + offset] = max(multiplier[start + offset], 1 + (size - 1) * fade)
    return multiplier


def synthetic_universe(count: int, *, seed: int, first_number: int = 1) -> list[SyntheticSpec]:
    """`count` made-up perpetuals named SYN001USDT, SYN002USDT… (clearly not real listings), sized like the
    long tail of Binance futures: $0.2M-$20M an hour, 0.6%-2.5% hourly volatility, prices from 0.001 to 100."""
    specs = []
    for number in range(first_number, first_number + count):
        symbol = f"SYN{number:03d}USDT"
        rng = symbol_rng(seed, symbol, 3)
        price = float(10 ** rng.uniform(-3, 2))
        precision = max(0, min(8, 4 - math.floor(math.log10(price))))
        specs.append(SyntheticSpec(
            symbol, round(price, precision), float(10 ** rng.uniform(5.3, 7.3)), float(rng.uniform(0.006, 0.025)),
            precision,
        ))
    return specs


def price_precision(prices: F64, max_decimals: int = 8) -> int:
    """The fewest decimals that write every price exactly (the symbol's tick precision, read off its data)."""
    sample = prices[: 2000]
    for decimals in range(max_decimals + 1):
        scaled = sample * 10.0**decimals
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-9 * np.maximum(1.0, np.abs(scaled))):
            return decimals
    return max_decimals
