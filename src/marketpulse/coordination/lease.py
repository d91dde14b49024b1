"""Leases for singleton duties: one process at a time does the job, another takes over when it dies.

A lease is a name (`paper-trading`), a holder (this process's id) and an expiry. `LeaseKeeper` tries to take it
every third of the TTL and, once it holds it, renews it on the same beat; while it holds the lease the duty runs
(`on_acquired`), when a renewal fails or the process shuts down the duty stops (`on_lost`) and the lease is given
up. A holder that dies (SIGKILL, power loss) or freezes stops renewing, so another keeper takes the lease at most
one TTL (`PULSE_LEASE_TTL_S`) plus one attempt interval later and the duty resumes there from the stored state.

Stores (`lease_store` picks one):
- Redis (when the bus is Redis, i.e. processes are scaled out): `SET key holder NX PX ttl` to take it, a Lua
  compare-and-PEXPIRE to renew and a compare-and-DEL to give it up, so only the holder ever extends or frees it.
  Expiry is Redis's own clock: no two hosts' clocks are compared.
- In process (the in-memory bus: one process is the whole deployment, e.g. `pulse demo` on SQLite): a dict keyed
  by name with the injected clock's expiry.
A duty's effects are keyed by stable ids (see docs/architecture.md), so the short overlap a frozen-then-resumed
former holder can cause before its next renewal fails is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog

from marketpulse.clock import Clock

log = structlog.get_logger(__name__)

KEY_PREFIX = "pulse:lease:"
STOP_WAIT_S = 3.0  # real seconds stop() lets an attempt in flight (a duty starting) finish before cancelling it


class LeaseStore(Protocol):
    async def acquire(self, name: str, holder: str, ttl_ms: int) -> bool:
        """Take the lease when it is free or expired, or extend it when `holder` has it; True if held now."""

    async def release(self, name: str, holder: str) -> None:
        """Give the lease up, if `holder` still has it."""

    async def close(self) -> None: ...


class InProcessLeaseStore:
    """Leases inside one process (its runtime owns one), expiring on the injected clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._held: dict[str, tuple[str, int]] = {}  # name → (holder, expires at ms)

    async def acquire(self, name: str, holder: str, ttl_ms: int) -> bool:
        now = self.clock.now_ms()
        current = self._held.get(name)
        if current is not None and current[0] != holder and current[1] > now:
            return False
        self._held[name] = (holder, now + ttl_ms)
        return True

    async def release(self, name: str, holder: str) -> None:
        if self._held.get(name, ("", 0))[0] == holder:
            del self._held[name]

    def holder(self, name: str) -> str | None:
        current = self._held.get(name)
        return current[0] if current is not None and current[1] > self.clock.now_ms() else None

    async def close(self) -> None:
        self._held.clear()


_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLeaseStore:
    def __init__(self, url: str, *, prefix: str = KEY_PREFIX) -> None:
        import redis.asyncio as redis

        self.client: Any = redis.from_url(url, decode_responses=True)
        self.prefix = prefix
        self._renew = self.client.register_script(_RENEW)
        self._release = self.client.register_script(_RELEASE)

    async def acquire(self, name: str, holder: str, ttl_ms: int) -> bool:
        key = self.prefix + name
        if await self.client.set(key, holder, nx=True, px=ttl_ms):
            return True
        return bool(await self._renew(keys=[key], args=[holder, ttl_ms]))

    async def release(self, name: str, holder: str) -> None:
        await self._release(keys=[self.prefix + name], args=[holder])

    async def holder(self, name: str) -> str | None:
        value: str | None = await self.client.get(self.prefix + name)
        return value

    async def close(self) -> None:
        await self.client.aclose()


def lease_store(bus_url: str, clock: Clock, deployment: str | None = None) -> LeaseStore:
    """Redis when the bus is Redis (the processes share it), keys under the deployment's prefix; in process
    otherwise (the in-memory bus means this process is the whole deployment)."""
    if bus_url.startswith(("redis://", "rediss://", "unix://")):
        from marketpulse.bus import key_prefix

        return RedisLeaseStore(bus_url, prefix=f"{key_prefix(deployment)}lease:")
    return InProcessLeaseStore(clock)


def holder_id() -> str:
    """This process's name as a lease holder: readable (host, pid) and unique (a random suffix)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


Callback = Callable[[], Awaitable[None]]


class LeaseKeeper:
    """Keeps trying to hold one lease and runs a duty while it does.

        keeper = LeaseKeeper(store, "paper-trading", ttl_ms=15_000, clock=clock,
                             on_acquired=runner.start, on_lost=runner.stop)
        await keeper.start()   # returns at once; the duty starts when the lease is taken
        await keeper.stop()    # the duty stops, then the lease is given up for another process to take
    """

    def __init__(self, store: LeaseStore, name: str, *, ttl_ms: int, clock: Clock, on_acquired: Callback,
                 on_lost: Callback, holder: str | None = None) -> None:
        if ttl_ms < 3:
            raise ValueError("a lease's TTL must be at least 3 ms")
        self.store, self.name, self.ttl_ms, self.clock = store, name, ttl_ms, clock
        self.on_acquired, self.on_lost = on_acquired, on_lost
        self.holder = holder or holder_id()
        self.held = False
        self.attempts = 0  # attempts made so far (tests wait on it instead of sleeping)
        self._expires_at = 0  # by our own clock: when a failed renewal must count as lost
        self._task: asyncio.Task[None] | None = None
        self._attempting = asyncio.Lock()  # stop() cancels the loop between attempts, never inside a duty's start

    @property
    def interval_ms(self) -> int:
        return self.ttl_ms // 3  # two renewals may fail (a Redis hiccup) before the lease can expire

    async def start(self) -> None:
        """The first attempt before returning (a free lease's duty is running when this returns), then the loop."""
        started = self.clock.now_ms()
        await self.attempt()
        self._task = asyncio.create_task(self._run(started + self.interval_ms), name=f"lease:{self.name}")

    async def stop(self) -> None:
        """Shutdown: stop the duty first (it may still write), then give the lease up so another takes over now
        rather than after the TTL."""
        if self._task is not None:
            acquired = False
            with contextlib.suppress(TimeoutError):  # a stuck store must not hold shutdown up for long
                await asyncio.wait_for(self._attempting.acquire(), STOP_WAIT_S)
                acquired = True
            self._task.cancel()
            if acquired:
                self._attempting.release()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.held:
            await self._lose("shutting down")
            with contextlib.suppress(Exception):
                await self.store.release(self.name, self.holder)

    async def _run(self, next_at: int) -> None:
        while True:
            await self.clock.sleep_until(next_at)
            next_at = self.clock.now_ms() + self.interval_ms
            async with self._attempting:
                await self.attempt()

    async def attempt(self) -> None:
        """One take-or-renew; starts or stops the duty when that changes."""
        try:
            await self._attempt()
        finally:
            self.attempts += 1  # counted once its outcome (duty started or stopped) is in place

    async def _attempt(self) -> None:
        now = self.clock.now_ms()
        try:
            ok = await self.store.acquire(self.name, self.holder, self.ttl_ms)
        except Exception as exc:
            # The store unreachable: keep the duty only while our lease surely hasn't expired (a margin of one
            # interval for the clocks), but don't count this as a renewal.
            log.warning("lease store unreachable", lease=self.name, error=str(exc))
            if self.held and now >= self._expires_at - self.interval_ms:
                await self._lose("it could not be renewed before expiring")
            return
        if not ok:
            if self.held:
                await self._lose("another holder has it")
            return
        self._expires_at = now + self.ttl_ms
        if not self.held:
            self.held = True
            log.info("lease acquired", lease=self.name, holder=self.holder)
            try:
                await self.on_acquired()
            except Exception:
                log.warning("lease duty failed to start; giving the lease up", lease=self.name, exc_info=True)
                await self._lose("its duty failed to start")
                with contextlib.suppress(Exception):
                    await self.store.release(self.name, self.holder)

    async def _lose(self, why: str) -> None:
        self.held = False
        log.info("lease given up", lease=self.name, holder=self.holder, reason=why)
        try:
            await self.on_lost()
        except Exception:
            log.warning("lease duty did not stop cleanly", lease=self.name, exc_info=True)


class PeriodicDuty:
    """A check repeated every `every_ms` of the injected clock, on whichever process holds the lease `name`.

        duty = PeriodicDuty(leases, "payments-grace", service.expire_grace, every_ms=60_000, ttl_ms=15_000,
                            clock=clock)
        await duty.start() … await duty.stop()

    `step` must be idempotent (keyed effects): a takeover may repeat the last check. A failed step is logged and
    the next check does what it missed."""

    def __init__(self, store: LeaseStore, name: str, step: Callable[[], Awaitable[Any]], *, every_ms: int,
                 ttl_ms: int, clock: Clock) -> None:
        self.name, self.step, self.every_ms, self.clock = name, step, every_ms, clock
        self._task: asyncio.Task[None] | None = None
        self.lease = LeaseKeeper(store, name, ttl_ms=ttl_ms, clock=clock, on_acquired=self._run_here,
                                 on_lost=self._stop_here)

    async def start(self) -> None:
        await self.lease.start()

    async def stop(self) -> None:
        await self.lease.stop()

    async def _run_here(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def _stop_here(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:  # a database hiccup: the next check does what this one missed
                log.exception("periodic duty failed; retrying at the next check", duty=self.name)
            await self.clock.sleep_until(self.clock.now_ms() + self.every_ms)
