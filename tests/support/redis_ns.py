"""Each test's own corner of the shared Redis server, so checkouts running their suites at once never meet.

Fixed database numbers and FLUSHDB made two `make test` runs on one machine wipe each other's streams mid-test
(and Redis pub/sub ignores database numbers anyway). Instead every test gets a deployment name unique to this run
and to the test; everything the code keeps in Redis for that deployment sits under `key_prefix(name)` (bus
streams, leases, rate limits), the Socket.IO channel is named after it, and cleanup deletes only those keys.
"""

from __future__ import annotations

import itertools
import os
import uuid

import redis.asyncio as redis

from marketpulse.bus import key_prefix

REDIS_URL = os.environ.get("PULSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")  # the server (and db) to use
E2E_REDIS_URL = os.environ.get("PULSE_TEST_E2E_REDIS_URL", "redis://127.0.0.1:6379/14")
RUN_ID = uuid.uuid4().hex[:10]  # this pytest process's: another checkout's run draws another
_serial = itertools.count()


def new_deployment(kind: str = "test") -> str:
    """A deployment name no other test, run or checkout uses."""
    return f"{kind}-{RUN_ID}-{next(_serial)}"


async def unlink_namespace(url: str, deployment: str) -> int:
    """Delete the deployment's keys (SCAN MATCH + UNLINK: never FLUSHDB, which takes everyone's); returns how many."""
    client = redis.from_url(url)
    deleted = 0
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{key_prefix(deployment)}*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                deleted += await client.unlink(*batch)
                batch = []
        if batch:
            deleted += await client.unlink(*batch)
    finally:
        await client.aclose()
    return deleted
