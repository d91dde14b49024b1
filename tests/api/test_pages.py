"""The one list envelope: every list endpoint answers `{"data": [...], "next": <cursor or null>}` (api/pages.Page),
read off the OpenAPI document, so a list added later in another shape fails here; and an offset-paged list walks
to its end by following `next`."""

from __future__ import annotations

from typing import Any

import httpx

from marketpulse.api.pages import next_offset, offset_of, page

LISTS = [
    "/api/v1/market/data", "/api/v1/market/history/{symbol}", "/api/v1/market/open-interest/history/{symbol}",
    "/api/v1/market/liquidations", "/api/v1/volume-alerts", "/api/v1/volume-alerts/recent",
    "/api/v1/volume-alerts/subscriptions", "/api/v1/paper/positions", "/api/v1/paper/orders", "/api/v1/paper/fills",
    "/api/v1/paper/deployments", "/api/v1/backtests", "/api/v1/account/api-keys", "/api/v1/account/sessions",
    "/api/v1/account/passkeys", "/api/v1/account/destinations", "/api/v1/account/notifications",
    "/api/v1/account/credits", "/api/v1/admin/users", "/api/v1/admin/audit-log", "/api/v1/admin/notifications",
    "/api/v1/watchlist", "/api/v1/alerts/rules", "/api/v1/alerts/history", "/api/v1/admin/signal-configs",
    "/api/v1/admin/signals/rejected", "/api/v1/signals/configs", "/api/v1/signals/subscriptions",
    "/api/v1/signals/history", "/api/v1/payments/products", "/api/v1/admin/payments/events",
    "/api/v1/payments/usdt/chains", "/api/v1/payments/usdt/invoices", "/api/v1/tax/reports",
]


def _schema(spec: dict[str, Any], path: str) -> dict[str, Any]:
    schema: dict[str, Any] = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


async def test_every_list_answers_the_one_envelope(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    bare = []
    for path, operations in spec["paths"].items():
        if "get" not in operations or "200" not in operations["get"]["responses"]:
            continue
        content = operations["get"]["responses"]["200"].get("content", {}).get("application/json")
        if content and _schema(spec, path).get("type") == "array":
            bare.append(path)
    assert bare == [], f"bare JSON arrays: answer marketpulse.api.pages.Page instead: {bare}"
    for path in LISTS:
        if path.startswith("/api/v1/payments/usdt") and path not in spec["paths"]:
            continue  # USDT payments are routed only when configured
        props = _schema(spec, path).get("properties", {})
        assert props.get("data", {}).get("type") == "array", path
        assert "next" in props, path


async def test_plans_and_lists_read_the_same_way(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/v1/plans")).json()
    assert {p["name"] for p in body["data"]} >= {"free", "pro", "elite"} and body["next"] is None


def test_page_helpers() -> None:
    assert page([1, 2]).model_dump() == {"data": [1, 2], "next": None}
    assert page([1], 50).next == "50"
    assert offset_of(10, None) == 10 and offset_of(10, "40") == 40
    assert next_offset(0, 50, 120) == "50" and next_offset(100, 20, 120) is None and next_offset(0, 0, 5) is None
