"""The combined WebSocket stream: connect, hand every message to a callback, reconnect forever.

- Failed connects and dropped connections wait `Backoff` delays (1 s → 30 s, jittered) through the injected
  `sleep`; the backoff resets once a connection has delivered a usable frame (it was genuinely healthy).
- A connection that goes silent for `idle_timeout_s` is replaced (Binance pushes `!ticker@arr` every second;
  silence means a stalled route, which Binance has shown: subscriptions acknowledged, no data sent).
- Binance closes every connection at 24 h; we rotate earlier (`max_age_ms`, on the injected clock) and
  reconnect at once, without backoff.
- Pings: the websockets library answers them from its own reader task. Handling a frame takes about a
  millisecond and never blocks the event loop, so pongs go out promptly (Binance pings every 3 minutes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
import websockets
from websockets.asyncio.client import ClientConnection, connect

from marketpulse.clock import Clock
from marketpulse.marketdata.binance.backoff import Backoff
from marketpulse.marketdata.binance.rest import Sleep

log = structlog.get_logger(__name__)

MAX_AGE_MS = 23 * 3_600_000 + 50 * 60_000  # 10 minutes before Binance's 24 h cut
IDLE_TIMEOUT_S = 60.0
MAX_FRAME_BYTES = 16 * 1024 * 1024  # a full !ticker@arr is ~250 kB; leave room for listings

# Returns True when the message was a usable frame (that is what resets the backoff).
MessageHandler = Callable[[str | bytes], Awaitable[bool]]


def market_stream_url(ws_base_url: str, streams: tuple[str, ...]) -> str:
    """Since April 2026 ticker and mark-price streams are served only under `/market`."""
    return f"{ws_base_url.rstrip('/')}/market/stream?streams={'/'.join(streams)}"


class ReconnectingStream:
    def __init__(
        self, url: str, on_message: MessageHandler, *, clock: Clock, sleep: Sleep = asyncio.sleep,
        backoff: Backoff | None = None, max_age_ms: int = MAX_AGE_MS, idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> None:
        self.url = url
        self._on_message = on_message
        self._clock = clock
        self._sleep = sleep
        self.backoff = backoff or Backoff()
        self._max_age_ms = max_age_ms
        self._idle_timeout_s = idle_timeout_s
        self.connections = 0  # successful connects, for health and tests

    async def run(self) -> None:
        while True:
            try:
                async with connect(self.url, max_size=MAX_FRAME_BYTES, open_timeout=10) as ws:
                    self.connections += 1
                    log.info("binance stream connected", url=self.url, connections=self.connections)
                    if await self._consume_until_rotation(ws):
                        continue  # proactive rotation: reconnect now
                    log.warning("binance stream closed by server", code=ws.close_code, reason=ws.close_reason)
            except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.ConnectionClosed) as exc:
                log.warning("binance stream failed", error=f"{type(exc).__name__}: {exc}"[:300])
            delay = self.backoff.next_delay()
            log.info("binance stream reconnecting", delay_s=round(delay, 3), attempt=self.backoff.attempt)
            await self._sleep(delay)

    async def _consume_until_rotation(self, ws: ClientConnection) -> bool:
        """Read until the server closes (False) or the connection is old enough to rotate (True)."""
        rotate = asyncio.create_task(self._clock.sleep_until(self._clock.now_ms() + self._max_age_ms))
        reader = asyncio.create_task(self._read(ws))
        try:
            done, _ = await asyncio.wait({rotate, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (rotate, reader):
                task.cancel()
            await asyncio.gather(rotate, reader, return_exceptions=True)
        if rotate in done:
            log.info("binance stream rotating before the 24 h limit")
            await ws.close()
            return True
        reader.result()  # re-raise a connection error for the caller's backoff
        return False

    async def _read(self, ws: ClientConnection) -> None:
        while True:
            try:
                async with asyncio.timeout(self._idle_timeout_s):
                    message = await ws.recv(decode=False)  # bytes: msgspec reads UTF-8 itself
            except websockets.ConnectionClosedOK:
                return
            except TimeoutError:
                log.warning("binance stream silent; reconnecting", idle_timeout_s=self._idle_timeout_s)
                raise
            if await self._on_message(message):
                self.backoff.reset()
