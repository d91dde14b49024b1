"""A local fake Stripe for `pulse demo` and the tests, speaking Stripe's wire format to the official client.

    fake = FakeStripe(clock, api_key="sk_test_…", webhook_secret="whsec_…", webhook_url="http://…/webhook",
                      prices={"price_pro": Price(2900, recurring=True)})
    await fake.start()            # serves on 127.0.0.1:<free port>: PULSE_STRIPE_API_BASE = fake.base_url

What it speaks: form-encoded bodies with Stripe's bracket notation (`line_items[0][price]=…`), `Authorization:
Bearer sk_…`, `Idempotency-Key` (the same key and body answer the first response again with `Idempotent-Replayed:
true`; the same key with another body is a 400 `idempotency_error`; a request refused by validation is not
saved, as at Stripe), Stripe's error objects (`{"error": {type,
code, message, param}}`), and objects shaped like Stripe's: Customers, Checkout Sessions, Subscriptions (the period
on the items, as since API 2025-03-31), Billing Portal sessions, Invoices (a list), Billing Meter Events.

The hosted pages stand in for Stripe's: `GET /pay/{session}` shows a "Pay" button; paying completes the session,
makes the subscription (or the payment) and its invoice, sends the webhook events signed as Stripe signs them
(`Stripe-Signature: t=…,v1=HMAC-SHA256`), and redirects to the session's success URL. `GET /portal/{id}` offers
to cancel the subscription. Tests drive the rest: `fail_renewal`, `renew`, `refund`, `events`, `deliver`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import html
import json
import re
import secrets
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from marketpulse.clock import Clock

PERIOD_S = 30 * 86_400
API_VERSION = "2025-09-30.clover"


@dataclass(frozen=True)
class Price:
    unit_amount: int  # cents
    recurring: bool
    currency: str = "usd"


class StripeError(Exception):
    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.body = status, {"error": {
            "type": type_, "message": message, **({"code": code} if code else {}),
            **({"param": param} if param else {})}}


def parse_form(body: str) -> dict[str, Any]:
    """Stripe's form encoding → nested dicts and lists (`a[b][0][c]=v`)."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node: Any = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt: Any = value if last else ([] if parts[i + 1].isdigit() else {})
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append(None)
                if last or node[index] is None:
                    node[index] = nxt
                node = node[index]
            else:
                if last or part not in node:
                    node[part] = nxt
                node = node[part]
    return out


def sign(payload: bytes, secret: str, t: int) -> str:
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def _id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


class _QuietServer(uvicorn.Server):
    """Leaves signals to the process it runs in (the demo's own shutdown)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class FakeStripe:
    clock: Clock
    api_key: str
    webhook_secret: str
    webhook_url: str | None = None
    prices: dict[str, Price] = field(default_factory=dict)
    host: str = "127.0.0.1"
    # Where webhooks go: a client of our own by default; tests give the ASGI client of the app under test.
    webhook_client: httpx.AsyncClient | None = None
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)  # by payment intent
    meter_events: list[dict[str, Any]] = field(default_factory=list)
    meters: set[str] = field(default_factory=set)  # event names of the account's meters (empty: any)
    events: list[dict[str, Any]] = field(default_factory=list)  # every event made, in order
    requests: list[tuple[str, str, dict[str, Any], str | None]] = field(default_factory=list)  # method, path, …
    port: int = 0
    _idempotency: dict[str, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- lifecycle ---

    async def start(self) -> None:
        # Bound and listening before it returns: the first request waits in the backlog, never refused.
        sock = socket.socket()
        sock.bind((self.host, 0))
        sock.listen(128)
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(self.app(), log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="fake-stripe")

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def app(self) -> Starlette:
        api = [Route("/v1/customers", self._create_customer, methods=["POST"]),
               Route("/v1/customers/{id}", self._get("customers"), methods=["GET"]),
               Route("/v1/checkout/sessions", self._create_session, methods=["POST"]),
               Route("/v1/checkout/sessions/{id}", self._get("sessions"), methods=["GET"]),
               Route("/v1/subscriptions/{id}", self._get("subscriptions"), methods=["GET"]),
               Route("/v1/billing_portal/sessions", self._create_portal, methods=["POST"]),
               Route("/v1/invoices", self._list_invoices, methods=["GET"]),
               Route("/v1/billing/meter_events", self._meter_event, methods=["POST"]),
               Route("/v1/refunds", self._create_refund, methods=["POST"])]
        pages = [Route("/pay/{id}", self._pay_page, methods=["GET"]),
                 Route("/pay/{id}", self._pay, methods=["POST"]),
                 Route("/portal/{id}", self._portal_page, methods=["GET"]),
                 Route("/portal/{id}/cancel", self._portal_cancel, methods=["POST"])]
        return Starlette(routes=[*(Route(r.path, self._api(r.endpoint), methods=r.methods) for r in api), *pages])

    # --- the API's plumbing: key, form body, idempotency, errors ---

    def _api(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            body = (await request.body()).decode()
            params = parse_form(body if request.method == "POST" else request.url.query)
            key = request.headers.get("Idempotency-Key")
            self.requests.append((request.method, request.url.path, params, key))
            if request.headers.get("Authorization") != f"Bearer {self.api_key}":
                return JSONResponse(StripeError(401, "Invalid API Key provided").body, status_code=401)
            if request.method == "POST" and key:
                seen = self._idempotency.get(key)
                if seen is not None and seen[0] != body:
                    return JSONResponse(StripeError(
                        400, "Keys for idempotent requests can only be used with the same parameters they were "
                        "first used with.", type_="idempotency_error").body, status_code=400)
                if seen is not None:
                    return JSONResponse(seen[2], status_code=seen[1], headers={"Idempotent-Replayed": "true"})
            try:
                status, out = 200, await handler(request, params)
            except StripeError as err:
                status, out = err.status, err.body
            # Stripe saves a result only once the endpoint started executing: a request that failed validation
            # (an invalid_request_error) may be sent again, fixed, under the same key.
            if request.method == "POST" and key and not (
                    status == 400 and out.get("error", {}).get("type") == "invalid_request_error"):
                self._idempotency[key] = (body, status, out)
            return JSONResponse(out, status_code=status, headers={"Request-Id": _id("req")})
        return endpoint

    def _get(self, store: str) -> Any:
        async def handler(request: Request, params: dict[str, Any]) -> dict[str, Any]:
            found = getattr(self, store).get(request.path_params["id"])
            if found is None:
                raise StripeError(404, f"No such {store[:-1]}: '{request.path_params['id']}'",
                                  code="resource_missing", param="id")
            return dict(found)
        return handler

    def _now(self) -> int:
        return self.clock.now_ms() // 1000

    # --- API objects ---

    async def _create_customer(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        cid = _id("cus")
        customer = {"id": cid, "object": "customer", "email": params.get("email"),
                    "metadata": params.get("metadata") or {}, "created": self._now(), "livemode": False}
        self.customers[cid] = customer
        return customer

    async def _create_session(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        mode = params.get("mode")
        if mode not in ("subscription", "payment"):
            raise StripeError(400, "Invalid mode: must be one of payment, setup, or subscription", param="mode")
        items = params.get("line_items") or []
        price_id = (items[0] or {}).get("price") if items else None
        price = self.prices.get(price_id or "")
        if price is None:
            raise StripeError(400, f"No such price: '{price_id}'", code="resource_missing",
                              param="line_items[0][price]")
        if price.recurring != (mode == "subscription"):
            raise StripeError(400, "The price's type doesn't match the mode", param="line_items[0][price]")
        if not params.get("success_url"):
            raise StripeError(400, "Missing required param: success_url.", code="parameter_missing",
                              param="success_url")
        customer = params.get("customer")
        if customer and customer not in self.customers:
            raise StripeError(400, f"No such customer: '{customer}'", code="resource_missing", param="customer")
        extra = [str((item or {}).get("price") or "") for item in items[1:]]
        for i, extra_price in enumerate(extra, start=1):
            found = self.prices.get(extra_price)
            if found is None or not found.recurring or mode != "subscription":
                raise StripeError(400, f"No such price: '{extra_price}'", code="resource_missing",
                                  param=f"line_items[{i}][price]")
        sid = _id("cs")
        session = {
            "id": sid, "object": "checkout.session", "mode": mode, "status": "open", "payment_status": "unpaid",
            "url": f"{self.base_url}/pay/{sid}", "client_reference_id": params.get("client_reference_id"),
            "customer": customer, "customer_email": params.get("customer_email"),
            "metadata": params.get("metadata") or {}, "success_url": params["success_url"],
            "cancel_url": params.get("cancel_url"), "amount_total": price.unit_amount * int(items[0].get(
                "quantity") or 1), "currency": price.currency, "subscription": None, "payment_intent": None,
            "created": self._now(), "expires_at": self._now() + 86_400, "livemode": False,
            "_price": price_id, "_extra_prices": extra, "_subscription_data": params.get("subscription_data") or {},
            "_payment_intent_data": params.get("payment_intent_data") or {},
        }
        self.sessions[sid] = session
        return self._public(session)

    async def _create_portal(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        customer = str(params.get("customer") or "")
        if customer not in self.customers:
            raise StripeError(400, f"No such customer: '{customer}'", code="resource_missing", param="customer")
        pid = _id("bps")
        portal = {"id": pid, "object": "billing_portal.session", "customer": customer,
                  "return_url": params.get("return_url"), "url": f"{self.base_url}/portal/{pid}",
                  "created": self._now(), "livemode": False}
        self.sessions[pid] = portal
        return portal

    async def _list_invoices(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        found = [i for i in self.invoices.values() if params.get("customer") in (None, i["customer"])]
        found.sort(key=lambda i: i["created"], reverse=True)
        limit = int(params.get("limit") or 10)
        return {"object": "list", "data": found[:limit], "has_more": len(found) > limit, "url": "/v1/invoices"}

    async def _create_refund(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        pi = str(params.get("payment_intent") or "")
        charge = self.charges.get(pi)
        if charge is None:
            raise StripeError(400, f"No such payment_intent: '{pi}'", code="resource_missing", param="payment_intent")
        if charge["refunded"]:
            raise StripeError(400, f"Charge {charge['id']} has already been refunded.",
                              code="charge_already_refunded")
        amount = int(params.get("amount") or charge["amount"] - charge["amount_refunded"])
        refund = {"id": _id("re"), "object": "refund", "amount": amount, "charge": charge["id"],
                  "payment_intent": pi, "currency": charge["currency"], "status": "succeeded",
                  "created": self._now()}
        # Stripe's webhook may arrive before its answer does: sent first here, so tests need not wait for it.
        await self.refund(pi, amount)
        return refund

    async def _meter_event(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        """Billing Meter Events as Stripe takes them: `event_name` (a meter's), `payload[stripe_customer_id]` and
        `payload[value]` (a whole number as text), `timestamp` within the past 35 days and at most 5 minutes ahead,
        and `identifier`, which Stripe counts once (a repeat is accepted and not counted again)."""
        for name in ("event_name", "payload"):
            if not params.get(name):
                raise StripeError(400, f"Missing required param: {name}.", code="parameter_missing", param=name)
        if self.meters and params["event_name"] not in self.meters:
            raise StripeError(400, f"No active meter was found for event name '{params['event_name']}'.",
                              code="resource_missing", param="event_name")
        payload = params["payload"]
        customer, value = payload.get("stripe_customer_id"), str(payload.get("value") or "")
        if not customer:  # (an unknown customer is reported later, asynchronously, at Stripe: accepted here)
            raise StripeError(400, "Missing required param: payload[stripe_customer_id].", code="parameter_missing",
                              param="payload[stripe_customer_id]")
        if not value.isdigit():
            raise StripeError(400, "payload[value] must be a whole number.", param="payload[value]")
        now = self._now()
        timestamp = int(params.get("timestamp") or now)
        if not now - 35 * 86_400 <= timestamp <= now + 300:
            raise StripeError(400, "Timestamp must be within the past 35 calendar days and at most 5 minutes in "
                              "the future.", param="timestamp")
        identifier = params.get("identifier") or _id("mev")
        event = {"object": "billing.meter_event", "event_name": params["event_name"], "identifier": identifier,
                 "payload": payload, "timestamp": timestamp, "created": now, "livemode": False}
        if all(e["identifier"] != identifier for e in self.meter_events):  # Stripe counts an identifier once
            self.meter_events.append(event)
        return event

    def usage(self, customer_id: str, event_name: str | None = None) -> int:
        """What the meter summed for a customer (each identifier once), as Stripe's meter event summaries do."""
        return sum(int(e["payload"]["value"]) for e in self.meter_events
                   if e["payload"].get("stripe_customer_id") == customer_id
                   and event_name in (None, e["event_name"]))

    @staticmethod
    def _public(obj: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    # --- hosted pages ---

    async def _pay_page(self, request: Request) -> Response:
        session = self.sessions.get(request.path_params["id"])
        if session is None or session.get("object") != "checkout.session":
            return HTMLResponse("<h1>No such checkout session</h1>", status_code=404)
        amount = f"${session['amount_total'] / 100:,.2f}"
        cancel = (f'<p><a href="{html.escape(session["cancel_url"])}">Cancel</a></p>' if session.get("cancel_url")
                  else "")
        return HTMLResponse(
            f"<!doctype html><title>Fake Stripe Checkout</title><h1>Fake Stripe Checkout</h1>"
            f"<p>{html.escape(session['mode'])}: {amount} ({html.escape(session['_price'])})</p>"
            f'<form method="post"><p><label>Card <input name="card" value="4242 4242 4242 4242"></label></p>'
            f'<button type="submit" id="pay">Pay</button></form>{cancel}')

    async def _pay(self, request: Request) -> Response:
        session = self.sessions.get(request.path_params["id"])
        if session is None or session.get("object") != "checkout.session":
            return HTMLResponse("<h1>No such checkout session</h1>", status_code=404)
        if session["status"] == "open":
            await self.complete(session["id"])
        target = str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session["id"])
        return RedirectResponse(target, status_code=303)

    async def _portal_page(self, request: Request) -> Response:
        portal = self.sessions.get(request.path_params["id"])
        if portal is None or portal.get("object") != "billing_portal.session":
            return HTMLResponse("<h1>No such portal session</h1>", status_code=404)
        subs = [s for s in self.subscriptions.values() if s["customer"] == portal["customer"]
                and s["status"] not in ("canceled",)]
        rows = "".join(f"<li>{html.escape(s['id'])}: {html.escape(s['status'])}</li>" for s in subs)
        back = html.escape(portal.get("return_url") or "/")
        return HTMLResponse(
            f"<!doctype html><title>Fake Stripe billing portal</title><h1>Billing portal</h1><ul>{rows}</ul>"
            f'<form method="post" action="/portal/{portal["id"]}/cancel"><button id="cancel">Cancel '
            f'subscription</button></form><p><a href="{back}">Return</a></p>')

    async def _portal_cancel(self, request: Request) -> Response:
        portal = self.sessions.get(request.path_params["id"])
        if portal is None:
            return HTMLResponse("<h1>No such portal session</h1>", status_code=404)
        for sub in [s for s in self.subscriptions.values() if s["customer"] == portal["customer"]]:
            if sub["status"] != "canceled":
                await self.cancel(sub["id"])
        return RedirectResponse(portal.get("return_url") or "/", status_code=303)

    # --- what happens at Stripe (the pages, and tests directly) ---

    async def complete(self, session_id: str) -> None:
        """The customer paid: the session completes, with its subscription or payment, and the webhooks go out."""
        session = self.sessions[session_id]
        if not session["customer"]:
            customer = await self._create_customer(None, {"email": session.get("customer_email")})  # type: ignore[arg-type]
            session["customer"] = customer["id"]
        price = self.prices[session["_price"]]
        session.update(status="complete", payment_status="paid")
        if session["mode"] == "subscription":
            sub = self._new_subscription(session, price)
            session["subscription"] = sub["id"]
            invoice = self._invoice(sub, price, paid=True)
            await self.send("customer.subscription.created", sub)
            await self.send("invoice.paid", invoice)
        else:
            pi = _id("pi")
            session["payment_intent"] = pi
            self.charges[pi] = {"id": _id("ch"), "object": "charge", "amount": price.unit_amount,
                                "amount_refunded": 0, "refunded": False, "currency": price.currency,
                                "customer": session["customer"], "payment_intent": pi, "paid": True,
                                "status": "succeeded",
                                "metadata": (session["_payment_intent_data"].get("metadata") or {}),
                                "created": self._now()}
        await self.send("checkout.session.completed", self._public(session))

    def _new_subscription(self, session: Mapping[str, Any], price: Price) -> dict[str, Any]:
        now = self._now()
        sid = _id("sub")
        sub = {"id": sid, "object": "subscription", "customer": session["customer"], "status": "active",
               "metadata": dict(session["_subscription_data"].get("metadata") or {}),
               "cancel_at_period_end": False, "created": now, "start_date": now, "canceled_at": None,
               "items": {"object": "list", "has_more": False, "url": f"/v1/subscription_items?subscription={sid}",
                         "data": [{"id": _id("si"), "object": "subscription_item", "quantity": 1,
                                   "price": {"id": session["_price"], "object": "price",
                                             "unit_amount": price.unit_amount, "currency": price.currency,
                                             "recurring": {"interval": "month", "interval_count": 1}},
                                   "current_period_start": now, "current_period_end": now + PERIOD_S}] + [
                             {"id": _id("si"), "object": "subscription_item",
                              "price": {"id": extra, "object": "price", "unit_amount": self.prices[extra].unit_amount,
                                        "currency": self.prices[extra].currency,
                                        "recurring": {"interval": "month", "interval_count": 1,
                                                      "usage_type": "metered"}},
                              "current_period_start": now, "current_period_end": now + PERIOD_S}
                             for extra in session.get("_extra_prices") or []]},
               "livemode": False}
        self.subscriptions[sid] = sub
        return sub

    def _invoice(self, sub: Mapping[str, Any], price: Price, *, paid: bool) -> dict[str, Any]:
        iid = _id("in")
        item = sub["items"]["data"][0]
        invoice = {"id": iid, "object": "invoice", "customer": sub["customer"], "status": "paid" if paid else "open",
                   "amount_due": price.unit_amount, "amount_paid": price.unit_amount if paid else 0,
                   "amount_remaining": 0 if paid else price.unit_amount, "currency": price.currency,
                   "hosted_invoice_url": f"{self.base_url}/invoice/{iid}",
                   "number": f"FAKE-{len(self.invoices) + 1:04d}",
                   "created": self._now(), "period_start": item["current_period_start"],
                   "period_end": item["current_period_end"], "attempt_count": 1,
                   "parent": {"type": "subscription_details", "subscription_details": {
                       "subscription": sub["id"], "metadata": dict(sub["metadata"])}},
                   "livemode": False}
        self.invoices[iid] = invoice
        return invoice

    async def renew(self, subscription_id: str, *, paid: bool) -> None:
        """The next period's invoice: paid (the period moves on), or failed (the subscription goes past_due)."""
        sub = self.subscriptions[subscription_id]
        item = sub["items"]["data"][0]
        price = self.prices[item["price"]["id"]]
        if paid:
            item["current_period_start"] = item["current_period_end"]
            item["current_period_end"] += PERIOD_S
            sub["status"] = "active"
        else:
            sub["status"] = "past_due"
        invoice = self._invoice(sub, price, paid=paid)
        await self.send("invoice.paid" if paid else "invoice.payment_failed", invoice)
        await self.send("customer.subscription.updated", sub)

    async def fail_renewal(self, subscription_id: str) -> None:
        await self.renew(subscription_id, paid=False)

    async def cancel(self, subscription_id: str) -> None:
        sub = self.subscriptions[subscription_id]
        sub.update(status="canceled", canceled_at=self._now())
        await self.send("customer.subscription.deleted", sub)

    async def refund(self, payment_intent: str, amount: int | None = None) -> None:
        charge = self.charges[payment_intent]
        charge["amount_refunded"] = min(charge["amount"], charge["amount_refunded"] + (amount or charge["amount"]))
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        await self.send("charge.refunded", charge)

    # --- events and webhooks ---

    def event(self, type_: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        event = {"id": _id("evt"), "object": "event", "api_version": API_VERSION, "created": self._now(),
                 "type": type_, "data": {"object": json.loads(json.dumps(obj))}, "livemode": False,
                 "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None}}
        self.events.append(event)
        return event

    async def send(self, type_: str, obj: Mapping[str, Any]) -> httpx.Response | None:
        return await self.deliver(self.event(type_, obj))

    async def deliver(self, event: Mapping[str, Any], *, secret: str | None = None,
                      at_s: int | None = None) -> httpx.Response | None:
        """POST one event to the webhook, signed now (or at `at_s`) with the secret (or another)."""
        if self.webhook_url is None:
            return None
        payload = json.dumps(event).encode()
        headers = {"Stripe-Signature": sign(payload, secret or self.webhook_secret,
                                            self._now() if at_s is None else at_s),
                   "Content-Type": "application/json; charset=utf-8", "User-Agent": "Stripe/1.0 (+fake)"}
        if self.webhook_client is not None:
            return await self.webhook_client.post(self.webhook_url, content=payload, headers=headers)
        async with httpx.AsyncClient(timeout=10) as client:
            try:
                return await client.post(self.webhook_url, content=payload, headers=headers)
            except httpx.HTTPError:  # Stripe would retry later; the demo just logs nothing
                return None
