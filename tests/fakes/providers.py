"""Local fake notification providers on one aiohttp server, speaking each provider's real API and error shapes:

    POST /hook/{name}                              a webhook receiver (records Idempotency-Key and signature)
    POST /bot{token}/sendMessage                   Telegram Bot API (`{"ok": …}`, `parameters.retry_after` on 429)
    POST /api/webhooks/{id}/{token}                Discord webhook (`retry_after` body + X-RateLimit-* on 429)
    POST /services/{a}/{b}/{c}                     Slack incoming webhook (`ok` / plain-text error codes)
    POST /2010-04-01/Accounts/{sid}/Messages.json  Twilio Messages (form, basic auth, `{"code", "message"}` errors)
    POST /sms/json                                 Vonage SMS (form, `messages[0].status`)
    POST /push/{id}                                a Web Push service (RFC 8030: 201 Created)

Tests script failures per route kind: `fake.script("telegram", [Fail(429, retry_after=3), Fail(500)])` makes the
next Telegram requests answer those (then success); `Hang()` never answers (the client's timeout fires).
Everything received is in `fake.received[kind]`; webhook bodies are kept raw so signatures can be checked.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

TELEGRAM_TOKEN = "123456:TEST-token"
TWILIO_SID, TWILIO_TOKEN = "AC00000000000000000000000000000000", "twilio-secret"
VONAGE_KEY, VONAGE_SECRET = "vonage-key", "vonage-secret"
BAD_CHAT = "-1"  # Telegram: "chat not found"
BAD_NUMBER = "+15005550001"  # Twilio's magic invalid number (21211); Vonage refuses it too (status 3)
UNSUBSCRIBED = "+15005550004"  # Twilio 21610: the recipient replied STOP


@dataclass
class Fail:
    status: int
    retry_after: float | None = None


@dataclass
class Hang:
    seconds: float = 5.0  # past any test's delivery timeout


@dataclass
class Received:
    kind: str
    path: str
    headers: CIMultiDict[str]  # case-insensitive, like HTTP
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        from urllib.parse import parse_qsl

        return dict(parse_qsl(self.body.decode()))


@dataclass
class FakeProviders:
    port: int = 0
    received: dict[str, list[Received]] = field(default_factory=dict)
    scripts: dict[str, list[Fail | Hang]] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    webhook_delay_s: float = 0.0  # a slower receiver (so a crash lands mid-batch)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def script(self, kind: str, answers: list[Fail | Hang]) -> None:
        self.scripts.setdefault(kind, []).extend(answers)

    def of(self, kind: str) -> list[Received]:
        return self.received.get(kind, [])

    def keys(self, kind: str = "webhook") -> list[str]:
        return [r.headers.get("Idempotency-Key", "") for r in self.of(kind)]

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls) -> AsyncIterator[FakeProviders]:
        fake = cls()
        app = web.Application()
        app.router.add_post("/hook/{name}", fake._webhook)
        app.router.add_post("/bot{token}/sendMessage", fake._telegram)
        app.router.add_post("/api/webhooks/{id}/{token}", fake._discord)
        app.router.add_post("/services/{a}/{b}/{c}", fake._slack)
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", fake._twilio)
        app.router.add_post("/sms/json", fake._vonage)
        app.router.add_post("/push/{id}", fake._push)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        fake.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            yield fake
        finally:
            await runner.cleanup()

    async def wait_for(self, kind: str, count: int) -> list[Received]:
        """Once `count` requests of `kind` arrived (callers bound the wait with asyncio.timeout)."""
        while len(self.of(kind)) < count:
            self.arrived = asyncio.Event()
            await self.arrived.wait()
        return self.of(kind)

    async def _take(self, kind: str, request: web.Request) -> tuple[Received, Fail | None]:
        body = await request.read()
        got = Received(kind, request.path_qs, CIMultiDict(request.headers), body)
        script = self.scripts.get(kind)
        answer = script.pop(0) if script else None
        self.received.setdefault(kind, []).append(got)
        self.arrived.set()
        if isinstance(answer, Hang):
            await asyncio.sleep(answer.seconds)
        return got, answer if isinstance(answer, Fail) else None

    async def _webhook(self, request: web.Request) -> web.Response:
        if self.webhook_delay_s:
            await asyncio.sleep(self.webhook_delay_s)
        _, fail = await self._take("webhook", request)
        if fail:
            headers = {"Retry-After": f"{fail.retry_after:g}"} if fail.retry_after is not None else {}
            return web.Response(status=fail.status, text="receiver error", headers=headers)
        return web.json_response({"received": True})

    async def _telegram(self, request: web.Request) -> web.Response:
        got, fail = await self._take("telegram", request)
        if request.match_info["token"] != TELEGRAM_TOKEN:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        if fail and fail.status == 429:
            wait = int(fail.retry_after or 1)
            return web.json_response({"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after "
                                      f"{wait}", "parameters": {"retry_after": wait}}, status=429)
        if fail:
            return web.json_response({"ok": False, "error_code": fail.status, "description": "Internal Server Error"},
                                     status=fail.status)
        sent = got.json()
        if str(sent.get("chat_id")) == BAD_CHAT:
            return web.json_response({"ok": False, "error_code": 400, "description": "Bad Request: chat not found"},
                                     status=400)
        return web.json_response({"ok": True, "result": {"message_id": len(self.of("telegram")),
                                                         "chat": {"id": sent["chat_id"]}, "text": sent["text"]}})

    async def _discord(self, request: web.Request) -> web.Response:
        got, fail = await self._take("discord", request)
        if fail and fail.status == 429:
            wait = fail.retry_after or 1.0
            return web.json_response({"message": "You are being rate limited.", "retry_after": wait, "global": False},
                                     status=429, headers={"Retry-After": str(int(wait)), "X-RateLimit-Remaining": "0",
                                                          "X-RateLimit-Reset-After": f"{wait:g}"})
        if fail:
            return web.json_response({"message": "Unknown Webhook", "code": 10015}, status=fail.status)
        return web.json_response({"id": str(len(self.of("discord"))), "embeds": got.json().get("embeds", [])})

    async def _slack(self, request: web.Request) -> web.Response:
        _, fail = await self._take("slack", request)
        if fail:
            codes = {400: "invalid_payload", 403: "action_prohibited", 404: "no_service", 410: "channel_is_archived"}
            headers = {"Retry-After": f"{fail.retry_after:g}"} if fail.retry_after is not None else {}
            return web.Response(status=fail.status, text=codes.get(fail.status, "internal_error"), headers=headers)
        return web.Response(text="ok")

    async def _twilio(self, request: web.Request) -> web.Response:
        got, fail = await self._take("twilio", request)
        expected = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
        if request.headers.get("Authorization") != expected or request.match_info["sid"] != TWILIO_SID:
            return _twilio_error(401, 20003, "Authenticate")
        if fail:
            return _twilio_error(fail.status, 20429 if fail.status == 429 else 20500, "Too Many Requests"
                                 if fail.status == 429 else "Internal Server Error")
        form = got.form()
        if form.get("To") == BAD_NUMBER:
            return _twilio_error(400, 21211, f"The 'To' number {form['To']} is not a valid phone number.")
        if form.get("To") == UNSUBSCRIBED:
            return _twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
        return web.json_response({"sid": f"SM{len(self.of('twilio')):032d}", "status": "queued", "to": form["To"],
                                  "from": form["From"], "body": form["Body"]}, status=201)

    async def _vonage(self, request: web.Request) -> web.Response:
        got, fail = await self._take("vonage", request)
        form = got.form()
        if fail:
            return web.json_response({"message-count": "1", "messages": [
                {"status": "1" if fail.status == 429 else "5", "error-text": "Throttled"}]})
        if form.get("api_key") != VONAGE_KEY or form.get("api_secret") != VONAGE_SECRET:
            return web.json_response({"message-count": "1", "messages": [
                {"status": "4", "error-text": "Bad Credentials"}]})
        if "+" + form.get("to", "") == BAD_NUMBER:
            return web.json_response({"message-count": "1", "messages": [
                {"status": "3", "error-text": "Invalid Message: to"}]})
        return web.json_response({"message-count": "1", "messages": [
            {"to": form["to"], "message-id": f"v{len(self.of('vonage'))}", "status": "0"}]})

    async def _push(self, request: web.Request) -> web.Response:
        _, fail = await self._take("push", request)
        if fail:
            return web.Response(status=fail.status, text="push service error")
        return web.Response(status=201, headers={"Location": f"{request.path}/message"})


def _twilio_error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                              "status": status}, status=status)
