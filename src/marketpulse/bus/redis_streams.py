"""Redis Streams bus: one stream per topic, one consumer group per subscriber group (at-least-once).

Layout and semantics (the contract in `base.py`, plus what Redis adds):
- Topic `t` is the stream `{stream_prefix}t`; each entry has one field, `d`, holding the orjson payload.
  `publish` is XADD with `MAXLEN ~ maxlen`, so the stream is trimmed approximately (cheap) and never grows unbounded.
- `subscribe` creates the group at `$` with MKSTREAM, so a *new* group sees only messages published after the call.
  A group that already exists keeps its position: a restarted worker resumes where its group left off.
- Each consumer loops: XAUTOCLAIM pending entries idle for `claim_idle_ms` (its own failed ones, or a crashed
  consumer's), then XREADGROUP `>` blocking up to `block_ms`. Entries are acknowledged (XACK, one call per batch)
  only after the handler returned, so a handler that raises or a process that dies leaves them pending.
- `Message.deliveries` is Redis's delivery counter (1 on first read, +1 per claim). A message claimed with more than
  `max_deliveries` deliveries is a poison message: logged, copied to `{stream_prefix}dead-letter:{topic}` and acked,
  instead of crashing its consumers forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as redis
import structlog
from redis.exceptions import ResponseError

from marketpulse.bus.base import EventBus, Handler, Message, Subscription

log = structlog.get_logger(__name__)

PAYLOAD_FIELD = b"d"
DEAD_LETTER_PREFIX = "dead-letter:"


def default_consumer_name() -> str:
    """Unique per subscription, readable in XINFO CONSUMERS: host, pid and a short random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _StreamConsumer(Subscription):
    """One consumer of one group: the claim/read/handle/ack loop, run as a task."""

    def __init__(self, bus: RedisStreamsBus, topic: str, group: str, consumer: str, handler: Handler, *,
                 ephemeral: bool = False) -> None:
        self._bus, self._topic, self._group, self.consumer = bus, topic, group, consumer
        self._ephemeral = ephemeral
        self._stream = bus.stream_key(topic)
        self._handler = handler
        self._stopping = False
        self._busy = False
        self._last_claim = float("-inf")
        self._task = asyncio.create_task(self._run(), name=f"bus:{self._stream}:{group}:{consumer}")

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except redis.ConnectionError as exc:
                # Redis restarting or unreachable: keep the task alive and retry rather than silently stop consuming.
                log.warning("bus connection lost, retrying", stream=self._stream, group=self._group, error=str(exc))
                await asyncio.sleep(self._bus.block_ms / 1000)
            except ResponseError as exc:
                if str(exc).startswith(("NOGROUP", "UNBLOCKED")):
                    # The stream (and its groups) was deleted under us, e.g. FLUSHDB: recreate and carry on.
                    await self._bus.ensure_group(self._stream, self._group)
                else:
                    await self._pause_after_error()
            except Exception:
                await self._pause_after_error()

    async def _pause_after_error(self) -> None:
        # A bug or a surprising reply must not end consumption silently: log it, pause, go on.
        log.exception("bus consumer loop error", stream=self._stream, group=self._group)
        await asyncio.sleep(self._bus.block_ms / 1000)

    async def _step(self) -> None:
        """One round: claim stale entries when due, else read new ones (blocking up to block_ms) and handle them."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_claim >= self._bus.claim_interval_s:
            self._last_claim = loop.time()
            await self._claim_stale()
            return
        # The reply types redis-py declares cover RESP2 and RESP3 at once; this client speaks RESP2.
        response: Any = await self._bus.client.xreadgroup(
            self._group, self.consumer, {self._stream: ">"}, count=self._bus.read_count, block=self._bus.block_ms
        )
        for _stream, entries in response or []:
            await self._handle_batch([(entry_id, fields, 1) for entry_id, fields in entries])

    async def _claim_stale(self) -> None:
        """Take over entries pending longer than claim_idle_ms in this group (any consumer's, this one's included)."""
        client = self._bus.client
        start: bytes | str = "0-0"
        while not self._stopping:
            reply = await client.xautoclaim(
                self._stream,
                self._group,
                self.consumer,
                self._bus.claim_idle_ms,
                start_id=start,
                count=self._bus.read_count,
            )
            next_start, entries = reply[0], [e for e in reply[1] if e[1] is not None]  # None: trimmed while pending
            if entries:
                counts = await self._delivery_counts([entry_id for entry_id, _ in entries])
                await self._handle_batch([(eid, fields, counts.get(eid, 2)) for eid, fields in entries])
            if _text(next_start) == "0-0":
                return
            start = next_start

    async def _delivery_counts(self, ids: Sequence[bytes]) -> dict[bytes, int]:
        async with self._bus.client.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.xpending_range(self._stream, self._group, min=entry_id, max=entry_id, count=1)
            replies = await pipe.execute()
        counts: dict[bytes, int] = {}
        for entry_id, reply in zip(ids, replies, strict=True):
            if reply:
                counts[entry_id] = int(reply[0]["times_delivered"])
        return counts

    async def _handle_batch(self, entries: list[tuple[bytes, dict[bytes, bytes], int]]) -> None:
        handled: list[bytes] = []
        self._busy = True  # close() waits for the batch (current handler + ack) instead of cancelling it
        try:
            for entry_id, fields, deliveries in entries:
                if self._stopping:
                    break  # the rest stays pending in this consumer; another claims it after claim_idle_ms
                if await self._deliver(entry_id, fields, deliveries):
                    handled.append(entry_id)
        finally:
            if handled:
                await self._bus.client.xack(self._stream, self._group, *handled)
            self._busy = False

    async def _deliver(self, entry_id: bytes, fields: dict[bytes, bytes], deliveries: int) -> bool:
        """Run the handler; True when the entry may be acked (handled, or moved to the dead-letter stream)."""
        raw = fields.get(PAYLOAD_FIELD, b"")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            # Written by something other than this bus: it can never be handled, so don't let it loop.
            await self._dead_letter(entry_id, raw, deliveries, "payload is not JSON")
            return True
        if deliveries > self._bus.max_deliveries:
            await self._dead_letter(entry_id, raw, deliveries, f"delivered more than {self._bus.max_deliveries} times")
            return True
        message = Message(id=_text(entry_id), topic=self._topic, data=data, deliveries=deliveries)
        try:
            await self._handler(message)
            return True
        except Exception:
            log.exception(
                "bus handler failed; message stays pending",
                stream=self._stream,
                group=self._group,
                id=message.id,
                deliveries=deliveries,
            )
            return False

    async def _dead_letter(self, entry_id: bytes, raw: bytes, deliveries: int, reason: str) -> None:
        log.error(
            "poison message moved to dead-letter stream",
            stream=self._stream,
            group=self._group,
            id=_text(entry_id),
            deliveries=deliveries,
            reason=reason,
        )
        meta = {"id": _text(entry_id), "group": self._group, "deliveries": deliveries, "reason": reason}
        await self._bus.client.xadd(
            self._bus.stream_key(DEAD_LETTER_PREFIX + self._topic),
            {b"meta": orjson.dumps(meta), PAYLOAD_FIELD: raw},
            maxlen=self._bus.maxlen,
            approximate=True,
        )

    async def close(self) -> None:
        """Stop: a handler that is running finishes (and is acked); a blocked read is cancelled."""
        self._stopping = True
        if not self._busy:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._bus.forget(self)
        await self._leave_group()

    async def _leave_group(self) -> None:
        if self._ephemeral:  # the group is ours alone: delete it whole, pending entries and all
            try:
                await self._bus.client.xgroup_destroy(self._stream, self._group)
            except redis.RedisError as exc:
                log.debug("bus group not destroyed", group=self._group, error=str(exc))
            return
        """Remove this consumer from the group when it holds nothing, so restarts don't pile up dead names in
        XINFO CONSUMERS. With entries pending it stays: DELCONSUMER would drop those entries, unhandled."""
        client = self._bus.client
        try:
            held = await client.xpending_range(self._stream, self._group, "-", "+", 1, consumername=self.consumer)
            if not held:
                await client.xgroup_delconsumer(self._stream, self._group, self.consumer)
        except redis.RedisError as exc:  # Redis gone or stream deleted: nothing to tidy
            log.debug("bus consumer not removed from its group", consumer=self.consumer, error=str(exc))

    def abort(self) -> None:
        """Die like a crashed process: whatever this consumer has read but not acked stays pending in Redis."""
        self._stopping = True
        self._task.cancel()
        self._bus.forget(self)


class RedisStreamsBus(EventBus):
    def __init__(
        self,
        url: str,
        *,
        stream_prefix: str = "pulse:",
        maxlen: int = 100_000,
        claim_idle_ms: int = 30_000,
        block_ms: int = 1_000,
        read_count: int = 100,
        max_deliveries: int = 5,
    ) -> None:
        """`claim_idle_ms`: how long an entry stays with a silent consumer before another takes it over; keep it
        above the slowest handler's run time, or slow handlers see their messages handled twice."""
        if claim_idle_ms <= 0 or block_ms <= 0 or maxlen <= 0 or read_count <= 0 or max_deliveries <= 0:
            raise ValueError("RedisStreamsBus: claim_idle_ms, block_ms, maxlen, read_count, max_deliveries must be > 0")
        self.client: redis.Redis = redis.from_url(url, decode_responses=False)
        self.stream_prefix = stream_prefix
        self.maxlen = maxlen
        self.claim_idle_ms = claim_idle_ms
        self.block_ms = block_ms
        self.read_count = read_count
        self.max_deliveries = max_deliveries
        # Checking for stale entries twice per idle period bounds redelivery latency to ~1.5 × claim_idle_ms.
        self.claim_interval_s = claim_idle_ms / 2000
        self._subscriptions: set[_StreamConsumer] = set()

    def stream_key(self, topic: str) -> str:
        return f"{self.stream_prefix}{topic}"

    async def publish(self, topic: str, data: dict[str, Any]) -> str:
        entry_id = await self.client.xadd(
            self.stream_key(topic), {PAYLOAD_FIELD: orjson.dumps(data)}, maxlen=self.maxlen, approximate=True
        )
        return _text(entry_id)

    async def publish_many(self, topic: str, items: Sequence[dict[str, Any]]) -> list[str]:
        """Publish several messages in one round trip (a pipeline, not a transaction); ids in input order."""
        key = self.stream_key(topic)
        async with self.client.pipeline(transaction=False) as pipe:
            for data in items:
                pipe.xadd(key, {PAYLOAD_FIELD: orjson.dumps(data)}, maxlen=self.maxlen, approximate=True)
            ids = await pipe.execute()
        return [_text(entry_id) for entry_id in ids]

    async def ensure_group(self, stream: str, group: str) -> None:
        try:
            await self.client.xgroup_create(stream, group, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def subscribe(
        self, topic: str, group: str, handler: Handler, *, consumer: str | None = None, ephemeral: bool = False
    ) -> Subscription:
        await self.ensure_group(self.stream_key(topic), group)
        sub = _StreamConsumer(self, topic, group, consumer or default_consumer_name(), handler, ephemeral=ephemeral)
        self._subscriptions.add(sub)
        return sub

    def forget(self, sub: _StreamConsumer) -> None:
        self._subscriptions.discard(sub)

    async def dead_letters(self, topic: str, count: int = 100) -> list[Message]:
        """The oldest `count` poison messages of `topic` (original id and deliveries; non-JSON payloads skipped)."""
        entries: Any = await self.client.xrange(self.stream_key(DEAD_LETTER_PREFIX + topic), count=count)
        out = []
        for _entry_id, fields in entries:
            meta = orjson.loads(fields[b"meta"])
            with contextlib.suppress(orjson.JSONDecodeError):
                data = orjson.loads(fields[PAYLOAD_FIELD])
                out.append(Message(meta["id"], topic, data, meta["deliveries"]))
        return out

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (redis.RedisError, OSError):
            return False

    async def close(self) -> None:
        for sub in list(self._subscriptions):
            await sub.close()
        await self.client.aclose()
