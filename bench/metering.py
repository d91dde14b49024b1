"""Metered API billing's costs: counting a call (every API request of a signed-in caller pays it), flushing the
counts to the store, and one reporting step (prepare + send) against the local fake Stripe through the official
client.

    .venv/bin/python -m bench.metering [--users 1000] [--calls 1000000] [--reports 200]

SQLite file in a temporary directory, in-process bus, the injected clock fixed; the fake Stripe in this process.
Users are inserted directly (no password hashing), each given a Stripe customer and a live subscription row, so
the reporting step has `--reports` users over their quota.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from pydantic import SecretStr

from marketpulse.accounts.plans import plan_named
from marketpulse.accounts.tables import UserRow
from marketpulse.bus.memory import MemoryBus
from marketpulse.clock import FakeClock
from marketpulse.payments.devstripe import FakeStripe
from marketpulse.payments.tables import StripeCustomerRow, StripeSubscriptionRow
from marketpulse.runtime import Runtime
from marketpulse.settings import Settings
from marketpulse.storage.migrate import upgrade

NOW = 1_760_126_400_000


async def run(users: int, calls: int, reports: int) -> None:
    clock = FakeClock(NOW)
    fake = FakeStripe(clock, api_key="sk_test_bench", webhook_secret="whsec_bench")
    await fake.start()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await asyncio.to_thread(upgrade, url)
        settings = Settings(database_url=url, bus_url="memory://", data_dir=Path(tmp),
                            stripe_secret_key=SecretStr(fake.api_key), stripe_api_base=fake.base_url)
        runtime = Runtime.open(settings, clock=clock, bus=MemoryBus())
        try:
            ids = [str(uuid.uuid4()) for _ in range(users)]
            async with runtime.sessions() as s:
                for i, uid in enumerate(ids):
                    s.add(UserRow(id=uid, email=f"u{i}@bench.example", plan="pro", role="user", status="active",
                                  created_at_ms=NOW, updated_at_ms=NOW, verified_at_ms=NOW))
                    customer = f"cus_bench_{i}"
                    fake.customers[customer] = {"id": customer}
                    s.add(StripeCustomerRow(owner_id=uid, customer_id=customer, created_at_ms=NOW))
                    s.add(StripeSubscriptionRow(subscription_id=f"sub_bench_{i}", owner_id=uid,
                                                customer_id=customer, status="active", price_id="p", plan="pro",
                                                cancel_at_period_end=False, state_created_s=0, updated_at_ms=NOW))
                await s.commit()
            metering = runtime.services.metering
            start = time.perf_counter()
            for n in range(calls):
                metering.count(ids[n % users])
            counted = time.perf_counter() - start
            print(f"count(): {calls:,} calls over {users:,} users in {counted:.2f} s "
                  f"({counted / calls * 1e6:.2f} µs a call)")
            start = time.perf_counter()
            await metering.flush()
            print(f"flush: {users:,} users' counts upserted in {(time.perf_counter() - start) * 1000:.0f} ms")
            quota = plan_named("pro").api_calls_included_per_month or 0
            for uid in ids[:reports]:
                metering.count(uid, quota)
            await metering.flush()
            start = time.perf_counter()
            prepared = await metering.prepare()
            prepare_s = time.perf_counter() - start
            start = time.perf_counter()
            sent = await metering.send_unsent()
            send_s = time.perf_counter() - start
            print(f"report step: {prepared} reports prepared in {prepare_s * 1000:.0f} ms (one transaction), "
                  f"{sent} meter events sent in {send_s:.2f} s ({sent / send_s:.0f}/s through the stripe client)")
            assert len(fake.meter_events) == sent == prepared == reports
        finally:
            await runtime.close()
            await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--reports", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.users, args.calls, args.reports))


if __name__ == "__main__":
    main()
