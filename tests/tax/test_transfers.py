"""Transfers between the user's own accounts: matched automatically, and the user can confirm a match the rule
missed or undo one it made; reports follow the decisions. Over HTTP: list, confirm, undo, owner-scoped."""

from __future__ import annotations

from decimal import Decimal

import httpx

from marketpulse.runtime import Runtime
from marketpulse.tax.core import Method, dedupe_key
from marketpulse.tax.lots import TransferLinks, compute, transfer_matches
from tax.helpers import tx
from tax.test_views import upload, user

BUY = tx("2024-01-01", "buy", "BTC", "1", "20000", account="cb")
OUT = tx("2024-02-01T00:00:00Z", "transfer_out", "BTC", "1", account="cb", tx_id="w1")
IN_LATE = tx("2024-02-03T00:00:00Z", "transfer_in", "BTC", "0.999", account="ledger", tx_id="d9")  # past 24 h
SELL = tx("2024-03-01", "sell", "BTC", "0.999", "30000", account="ledger")


def test_a_confirmed_pair_carries_the_basis_the_rule_would_have_lost() -> None:
    history = [BUY, OUT, IN_LATE, SELL]
    assert [m.status for m in transfer_matches(history)] == ["unmatched"]
    alone = compute(history, Method.FIFO, per_wallet=True).disposals[0]
    assert alone.basis == 0 and alone.missing_basis  # received as a deposit without price: no basis
    links = TransferLinks(confirmed={dedupe_key(IN_LATE): dedupe_key(OUT)})
    (match,) = transfer_matches(history, links)
    assert (match.status, match.sent) == ("confirmed", OUT)
    confirmed = compute(history, Method.FIFO, per_wallet=True, links=links).disposals[0]
    assert confirmed.basis == Decimal(20000) and not confirmed.missing_basis
    assert confirmed.lots[0].acquired_ms == BUY.timestamp_ms  # the lot kept its date across the transfer


def test_an_undone_pair_is_never_matched() -> None:
    inbound = tx("2024-02-01T01:00:00Z", "transfer_in", "BTC", "0.999", account="ledger")
    history = [BUY, OUT, inbound, SELL]
    assert [m.status for m in transfer_matches(history)] == ["auto"]
    links = TransferLinks(undone=frozenset({(dedupe_key(OUT), dedupe_key(inbound))}))
    assert [(m.status, m.sent) for m in transfer_matches(history, links)] == [("unmatched", None)]
    assert compute(history, Method.FIFO, per_wallet=True, links=links).disposals[0].missing_basis


CSV = (
    "timestamp,type,asset,amount,price_usd,fee_usd,account,tx_id\n"
    "2024-01-01,buy,BTC,1,20000,,cb,b1\n"
    "2024-02-01T00:00:00Z,transfer_out,BTC,1,,,cb,w1\n"
    "2024-02-03T00:00:00Z,transfer_in,BTC,0.999,,,ledger,d9\n"
    "2024-03-01,sell,BTC,0.999,30000,,ledger,s1\n"
)


async def test_confirm_and_undo_over_http(client: httpx.AsyncClient, runtime: Runtime) -> None:
    me = await user(client, runtime, "moves@example.com")
    await upload(client, me, CSV)
    listed = (await client.get("/api/v1/tax/transfers", headers=me)).json()
    assert listed["next"] is None and [t["status"] for t in listed["data"]] == ["unmatched"]
    in_id = listed["data"][0]["received"]["id"]
    out_id = next(row.id for row in await _rows(runtime, "transfer_out"))
    sell_id = next(row.id for row in await _rows(runtime, "sell"))

    wrong = await client.post("/api/v1/tax/transfers/confirm", json={"out_id": sell_id, "in_id": in_id}, headers=me)
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "out_id"]
    confirmed = await client.post("/api/v1/tax/transfers/confirm", json={"out_id": out_id, "in_id": in_id},
                                  headers=me)
    assert confirmed.status_code == 200, confirmed.text
    (now,) = confirmed.json()["data"]
    assert (now["status"], now["sent"]["id"], now["sent"]["account"]) == ("confirmed", out_id, "cb")

    started = (await client.post("/api/v1/tax/reports", json={"year": 2024, "per_wallet": True}, headers=me)).json()
    await runtime.services.tax.wait()
    report = (await client.get(f"/api/v1/tax/reports/{started['id']}", headers=me)).json()
    assert report["summary"]["short"]["cost_basis"] == "20000.00" and report["summary"]["disposals_missing_basis"] == 0

    undone = await client.post("/api/v1/tax/transfers/undo", json={"out_id": out_id, "in_id": in_id}, headers=me)
    assert [t["status"] for t in undone.json()["data"]] == ["unmatched"]

    other = await user(client, runtime, "other-moves@example.com")
    foreign = await client.post("/api/v1/tax/transfers/confirm", json={"out_id": out_id, "in_id": in_id},
                                headers=other)
    assert foreign.status_code == 404
    assert (await client.get("/api/v1/tax/transfers", headers=other)).json()["data"] == []


async def _rows(runtime: Runtime, kind: str) -> list:
    from sqlalchemy import select

    from marketpulse.tax.tables import TaxTransactionRow

    async with runtime.sessions() as s:
        return list((await s.execute(select(TaxTransactionRow).where(TaxTransactionRow.type == kind))).scalars())
