"""The VolumeAlert (the seed's fields) and its wire form. Pure: no I/O.

Python attributes are snake_case; the wire form (bus messages, HTTP responses, `pulse detect spikes` output) is the
seed's camelCase. Wire timestamps are **epoch milliseconds** (integers, UTC) — the one time form used everywhere on
this platform; the ingest endpoint additionally *accepts* ISO 8601 strings and converts them.

Wire example:
    {"symbol": "BTCUSDT", "asset": "BTC", "currentVolume": 12700000.0, "previousVolume": 3100000.0,
     "volumeRatio": 4.1, "price": 121500.5, "fundingRate": 0.0001, "candleDirection": "bullish",
     "alertType": "SPIKE", "message": "BTCUSDT volume spike 4.10x: this hour $12.70M, last hour $3.10M",
     "timestamp": 1760130300000, "hourTimestamp": 1760130000000, "isUpdate": false, "id": "…" | null}
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from marketpulse.wire import camel

AlertType = Literal["SPIKE", "HALF_UPDATE", "FULL_UPDATE"]
CandleDirection = Literal["bullish", "bearish"]



class VolumeAlert(msgspec.Struct, frozen=True, kw_only=True, rename=camel):
    symbol: str
    asset: str
    current_volume: float  # USDT traded in the alert's hour (so far, for SPIKE and HALF_UPDATE)
    previous_volume: float  # USDT traded in the hour before it (complete)
    volume_ratio: float  # current_volume / previous_volume
    price: float | None
    funding_rate: float | None
    candle_direction: CandleDirection
    alert_type: AlertType
    message: str
    timestamp: int  # epoch ms: when the alert was raised (the scan time)
    hour_timestamp: int  # epoch ms: start of the hour whose volume it reports
    is_update: bool = False
    id: str | None = None  # set once stored

    def to_wire(self) -> dict[str, Any]:
        """camelCase JSON-able dict with epoch-ms timestamps (the form on the bus and in HTTP answers)."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


def format_usd(amount: float) -> str:
    """$12.70B / $3.10M / $950.00K / $12.34, as traders read volumes."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(amount) >= size:
            return f"${amount / size:.2f}{suffix}"
    return f"${amount:.2f}"


def alert_message(symbol: str, alert_type: AlertType, ratio: float, current: float, previous: float) -> str:
    label = {"SPIKE": "volume spike", "HALF_UPDATE": "half-hour update", "FULL_UPDATE": "full-hour update"}
    return (
        f"{symbol} {label[alert_type]} {ratio:.2f}x: "
        f"this hour {format_usd(current)}, last hour {format_usd(previous)}"
    )
