"""Redis Streams bus: one stream per topic, one consumer group per subscriber group (at-least-once).

Layout and semantics (the contract in `base.py`, plus what Redis adds):
- Topic `t` is the stream `{stream_prefix}t`; each entry has one field, `d`, holding the JSON payload (`Topic.encode`).
  `publish` is XADD with `MAXLEN ~ maxlen`, so the stream is trimmed approximately (cheap) and never grows unbounded.
- `subscribe` creates the group at `$` with MKSTREAM, so a *new* group sees only messages published after the call.
  A group that already exists keeps its position: a restarted worker resumes where its group left off.
- Each consumer loops: XAUTOCLAIM pending entries idle for `claim_idle_ms` (its own failed ones, or a crashed
  consumer's), then XREADGROUP `>` blocking up to `block_ms`. Entries are acknowledged (XACK, one call per batch)
  only after the handler returned, so a handler that raises or a process that dies leaves them pending.
- `Message.deliveries` is Redis's delivery counter (1 on first read, +1 per claim). A message claimed with more than
  `max_deliveries` deliveries is a poison message: logged, copied to `{stream_prefix}dead-letter:{topic}` and acked,
  instead of crashing its consumers forever. So is a message that cannot be decoded (see `topics.py`), at once.
- Ephemeral (per-process) groups are registered in the hash `{stream_prefix}ephemeral-groups:{topic}`, and their
  consumer refreshes the entry (a heartbeat, Redis's clock) every quarter of `reap_idle_ms`. A process that dies
  cannot delete its group, so each ephemeral `subscribe` reaps the topic's groups whose heartbeat and consumers
  have all been silent for `reap_idle_ms`. (The heartbeat, because before Redis 7.2 a consumer's XINFO idle time
  grows while it waits on a quiet stream: idle alone can't tell a quiet live process from a dead one.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

import orjson
import redis.asyncio as redis
import structlog
from redis.exceptions import ResponseError

from marketpulse.bus.base import (
    DeadLetter,
    EventBus,
    GroupLag,
    Handler,
    Subscription,
    count_dead_letter,
    decode_for_delivery,
)
from marketpulse.bus.topics import Topic, UndecodableMessage

T = TypeVar("T")

log = structlog.get_logger(__name__)

PAYLOAD_FIELD = b"d"
DEAD_LETTER_PREFIX = "dead-letter:"
EPHEMERAL_PREFIX = "ephemeral-groups:"
ONCE_PREFIX = "once:"


def default_consumer_name() -> str:
    """Unique per subscription, readable in XINFO CONSUMERS: host, pid and a short random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _StreamConsumer(Subscription):
    """One consumer of one group: the claim/read/handle/ack loop, run as a task."""

    def __init__(self, bus: RedisStreamsBus, topic: Topic[Any], group: str, consumer: str, handler: Handler[Any], *,
                 ephemeral: bool = False, takeover: bool = False) -> None:
        self._bus, self._topic, self._group, self.consumer = bus, topic, group, consumer
        self._ephemeral = ephemeral
        self._stream = bus.stream_key(topic.name)
        self._handler = handler
        self._stopping = False
        self._busy = False
        self._last_claim = float("-inf")
        self._last_beat = float("-inf")
        self._claim_idle_ms = 0 if takeover else bus.claim_idle_ms  # the first claim; later ones wait for idleness
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
        if self._ephemeral and loop.time() - self._last_beat >= self._bus.heartbeat_interval_s:
            self._last_beat = loop.time()
            await self._bus.heartbeat(self._topic, self._group)
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
                self._claim_idle_ms,
                start_id=start,
                count=self._bus.read_count,
            )
            next_start, entries = reply[0], [e for e in reply[1] if e[1] is not None]  # None: trimmed while pending
            if entries:
                counts = await self._delivery_counts([entry_id for entry_id, _ in entries])
                await self._handle_batch([(eid, fields, counts.get(eid, 2)) for eid, fields in entries])
            if _text(next_start) == "0-0":
                self._claim_idle_ms = self._bus.claim_idle_ms
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
        if deliveries > self._bus.max_deliveries:
            await self._dead_letter(entry_id, raw, deliveries, f"delivered more than {self._bus.max_deliveries} times")
            count_dead_letter(self._topic.name, "max_deliveries")
            return True
        try:
            message = decode_for_delivery(self._topic, raw, _text(entry_id), deliveries)
        except UndecodableMessage as exc:
            # It can never be handled (written by something other than this bus's publish): don't let it loop.
            await self._dead_letter(entry_id, raw, deliveries, str(exc))
            count_dead_letter(self._topic.name, exc)
            return True
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
            "message moved to dead-letter stream",
            stream=self._stream,
            group=self._group,
            id=_text(entry_id),
            deliveries=deliveries,
            reason=reason,
        )
        meta = {"id": _text(entry_id), "group": self._group, "deliveries": deliveries, "reason": reason}
        await self._bus.client.xadd(
            self._bus.stream_key(DEAD_LETTER_PREFIX + self._topic.name),
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
            await self._bus.destroy_ephemeral_group(self._topic, self._group)
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
        reap_idle_ms: int = 600_000,
    ) -> None:
        """`claim_idle_ms`: how long an entry stays with a silent consumer before another takes it over; keep it
        above the slowest handler's run time, or slow handlers see their messages handled twice.
        `reap_idle_ms`: how long every consumer of an ephemeral group must have been silent before the group counts
        as a crashed process's and is deleted; far above `block_ms`, the longest a live consumer is silent."""
        if min(claim_idle_ms, block_ms, maxlen, read_count, max_deliveries, reap_idle_ms) <= 0:
            raise ValueError("RedisStreamsBus: claim_idle_ms, block_ms, maxlen, read_count, max_deliveries, "
                             "reap_idle_ms must be > 0")
        self.client: redis.Redis = redis.from_url(url, decode_responses=False)
        self.stream_prefix = stream_prefix
        self.maxlen = maxlen
        self.claim_idle_ms = claim_idle_ms
        self.block_ms = block_ms
        self.read_count = read_count
        self.max_deliveries = max_deliveries
        self.reap_idle_ms = reap_idle_ms
        # Checking for stale entries twice per idle period bounds redelivery latency to ~1.5 × claim_idle_ms.
        self.claim_interval_s = claim_idle_ms / 2000
        self.heartbeat_interval_s = reap_idle_ms / 4000
        self._subscriptions: set[_StreamConsumer] = set()

    def stream_key(self, topic: str) -> str:
        return f"{self.stream_prefix}{topic}"

    async def publish(self, topic: Topic[T], payload: T) -> str:
        entry_id = await self.client.xadd(
            self.stream_key(topic.name), {PAYLOAD_FIELD: topic.encode(payload)}, maxlen=self.maxlen, approximate=True
        )
        return _text(entry_id)

    async def publish_many(self, topic: Topic[T], payloads: Sequence[T]) -> list[str]:
        """Publish several messages in one round trip (a pipeline, not a transaction); ids in input order."""
        key = self.stream_key(topic.name)
        async with self.client.pipeline(transaction=False) as pipe:
            for payload in payloads:
                pipe.xadd(key, {PAYLOAD_FIELD: topic.encode(payload)}, maxlen=self.maxlen, approximate=True)
            ids = await pipe.execute()
        return [_text(entry_id) for entry_id in ids]

    async def ensure_group(self, stream: str, group: str) -> None:
        try:
            await self.client.xgroup_create(stream, group, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def subscribe(
        self, topic: Topic[T], group: str, handler: Handler[T], *, consumer: str | None = None,
        ephemeral: bool = False, takeover: bool = False,
    ) -> Subscription:
        if ephemeral:
            await self.reap_ephemeral_groups(topic)
            await self.heartbeat(topic, group)
        await self.ensure_group(self.stream_key(topic.name), group)
        sub = _StreamConsumer(self, topic, group, consumer or default_consumer_name(), handler, ephemeral=ephemeral,
                              takeover=takeover)
        self._subscriptions.add(sub)
        return sub

    def forget(self, sub: _StreamConsumer) -> None:
        self._subscriptions.discard(sub)

    # --- ephemeral groups ---

    def _ephemeral_key(self, topic: Topic[Any]) -> str:
        return self.stream_key(EPHEMERAL_PREFIX + topic.name)

    async def _server_ms(self) -> int:
        # Redis's clock, not a host's: heartbeats written by several hosts are compared with one another's now.
        seconds, micros = await self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def heartbeat(self, topic: Topic[Any], group: str) -> None:
        """This process's ephemeral group is alive (Redis's time, so hosts with skewed clocks agree)."""
        await self.client.hset(self._ephemeral_key(topic), group, str(await self._server_ms()))

    async def destroy_ephemeral_group(self, topic: Topic[Any], group: str) -> None:
        try:
            await self.client.xgroup_destroy(self.stream_key(topic.name), group)
            await self.client.hdel(self._ephemeral_key(topic), group)
        except redis.RedisError as exc:
            log.debug("bus group not destroyed", group=group, error=str(exc))

    async def reap_ephemeral_groups(self, topic: Topic[Any]) -> list[str]:
        """Delete `topic`'s ephemeral groups left by crashed processes; returns their names.

        A group is reaped when its last heartbeat is over `reap_idle_ms` old and none of its consumers has touched
        it for `reap_idle_ms` either (a group whose process died before its first read has no consumers at all)."""
        registered: Any = await self.client.hgetall(self._ephemeral_key(topic))
        if not registered:
            return []
        now, stream = await self._server_ms(), self.stream_key(topic.name)
        reaped = []
        for name, since in registered.items():
            group = _text(name)
            if now - int(since) > self.reap_idle_ms and await self._abandoned(stream, group):
                await self.destroy_ephemeral_group(topic, group)
                reaped.append(group)
        if reaped:
            log.info("reaped abandoned per-process consumer groups", topic=topic.name, groups=reaped)
        return reaped

    async def _abandoned(self, stream: str, group: str) -> bool:
        try:
            consumers: Any = await self.client.xinfo_consumers(stream, group)
        except ResponseError:  # NOGROUP: already gone; destroying it again is harmless
            return True
        return all(int(c["idle"]) > self.reap_idle_ms for c in consumers)

    # --- dead letters and once-only effects ---

    async def dead_letters(self, topic: Topic[Any], count: int = 100) -> list[DeadLetter]:
        """The oldest `count` dead letters of `topic` (original id, deliveries, reason, raw payload)."""
        entries: Any = await self.client.xrange(self.stream_key(DEAD_LETTER_PREFIX + topic.name), count=count)
        out = []
        for _entry_id, fields in entries:
            meta = orjson.loads(fields[b"meta"])
            out.append(DeadLetter(meta["id"], topic.name, fields.get(PAYLOAD_FIELD, b""), meta["deliveries"],
                                  meta.get("reason", ""), meta.get("group", "")))
        return out

    async def first_time(self, key: str, ttl_ms: int) -> bool:
        # SET NX is atomic: of two processes handling the same message, exactly one gets True.
        return bool(await self.client.set(self.stream_key(ONCE_PREFIX + key), b"1", nx=True, px=ttl_ms))

    async def forget_key(self, key: str) -> None:
        await self.client.delete(self.stream_key(ONCE_PREFIX + key))

    async def group_lags(self) -> list[GroupLag]:
        """XINFO GROUPS of every topic stream under the prefix (Redis ≥ 7 reports `lag`; older ones: None)."""
        out = []
        async for key in self.client.scan_iter(match=f"{self.stream_prefix}*", _type="stream"):
            topic = _text(key).removeprefix(self.stream_prefix)
            if topic.startswith(DEAD_LETTER_PREFIX) or ":" in topic:  # ":": a named deployment's (`pulse:{name}:…`)
                continue
            for info in await self.client.xinfo_groups(key):
                lag = info.get("lag")
                out.append(GroupLag(topic, _text(info["name"]), None if lag is None else int(lag),
                                    int(info["pending"])))
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
