"""The demo's local receivers: a Telegram Bot API and a webhook endpoint on 127.0.0.1, keeping what they receive
in memory, shown at /dev/receivers (as /dev/mail shows the demo's mail), so `pulse demo` delivers real Telegram
and webhook notifications without a bot or a server of your own.

    receivers = DevReceivers(bot_token="123:demo")
    await receivers.start()      # PULSE_TELEGRAM_API_BASE = receivers.base_url; webhooks: receivers.hook_url("me")

They speak the real wire formats the channels use (and `tests/fakes/providers.py` fakes): Telegram's
`POST /bot{token}/sendMessage` with a JSON body (`chat_id`, `text`, `parse_mode`), answered `{"ok": true, "result":
Message}` or Telegram's errors (`{"ok": false, "error_code": 401, "description": "Unauthorized"}`, 400 for a
missing chat id or text); a webhook is `POST /hooks/{name}` with our signed JSON (`X-Pulse-Signature`, checked with
the secret registered for that name, and `Idempotency-Key`: a repeated key is shown as a repeat, not a new one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from marketpulse.clock import Clock, SystemClock
from marketpulse.delivery.signature import HEADER, BadSignature, verify_signature

KEEP = 200  # newest messages kept per receiver


@dataclass(frozen=True)
class Received:
    received_at_ms: int
    kind: str  # telegram | webhook
    to: str  # the chat id, or the webhook's name
    title: str
    text: str
    key: str | None = None  # the webhook's Idempotency-Key
    signature: str | None = None  # webhook: "valid", "invalid: …" or "unsigned"
    repeat: bool = False  # the key had been received before (a redelivery the receiver recognises)


class _QuietServer(uvicorn.Server):
    """Leaves signals to the process it runs in (the demo's own shutdown)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class DevReceivers:
    bot_token: str
    clock: Clock = field(default_factory=SystemClock)  # the dispatcher's: signatures are checked against it
    host: str = "127.0.0.1"
    secrets: dict[str, str] = field(default_factory=dict)  # webhook name → signing secret
    port: int = 0
    _items: deque[Received] = field(default_factory=lambda: deque(maxlen=2 * KEEP))
    _keys: set[str] = field(default_factory=set)
    _message_id: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def hook_url(self, name: str) -> str:
        return f"{self.base_url}/hooks/{name}"

    def received(self, kind: str | None = None) -> list[Received]:
        """Newest first."""
        return [r for r in reversed(self._items) if kind is None or r.kind == kind]

    async def start(self) -> None:
        sock = socket.socket()  # bound and listening before it returns: no request is refused
        sock.bind((self.host, 0))
        sock.listen(128)
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(self.app(), log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="dev-receivers")

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._server = self._task = None

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/bot{token}/sendMessage", self._telegram, methods=["POST"]),
                                 Route("/hooks/{name}", self._webhook, methods=["POST"])])

    async def _telegram(self, request: Request) -> Response:
        if request.path_params["token"] != self.bot_token:
            return _telegram_error(401, "Unauthorized")
        try:
            body = await request.json()
        except ValueError:
            return _telegram_error(400, "Bad Request: can't parse JSON")
        if not isinstance(body, dict) or not str(body.get("chat_id") or "").strip():
            return _telegram_error(400, "Bad Request: chat_id is empty")
        text = str(body.get("text") or "")
        if not text:
            return _telegram_error(400, "Bad Request: message text is empty")
        self._message_id += 1
        chat = str(body["chat_id"])
        title, _, rest = text.partition("\n")
        now_ms = self.clock.now_ms()
        self._items.append(Received(now_ms, "telegram", chat, title, rest))
        return JSONResponse({"ok": True, "result": {
            "message_id": self._message_id, "date": now_ms // 1000, "text": text,
            "chat": {"id": int(chat) if chat.lstrip("-").isdigit() else chat, "type": "private"},
            "from": {"id": 1, "is_bot": True, "first_name": "marketpulse demo"}}})

    async def _webhook(self, request: Request) -> Response:
        name = request.path_params["name"]
        raw = await request.body()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "the body is not a JSON object"}, status_code=400)
        signature = "unsigned"
        secret, header = self.secrets.get(name), request.headers.get(HEADER)
        if secret and header:
            try:
                verify_signature(secret, header, raw, self.clock.now_ms() // 1000)
                signature = "valid"
            except BadSignature as exc:
                signature = f"invalid: {exc}"
        key = request.headers.get("Idempotency-Key")
        repeat = key is not None and key in self._keys
        if key is not None:
            self._keys.add(key)
        if body.get("type") == "verification":
            title, text = "verification code", str(body.get("code", ""))
        else:
            title, text = str(body.get("title") or body.get("type") or "webhook"), str(body.get("text") or "")
        self._items.append(Received(self.clock.now_ms(), "webhook", name, title, text, key, signature, repeat))
        return JSONResponse({"received": True})


def _telegram_error(status: int, description: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error_code": status, "description": description}, status_code=status)
