"""The demo's mailbox: a local SMTP server (aiosmtpd) that keeps what it receives in memory, shown at /dev/mail,
so a new user of `pulse demo` can open the verification link without a real mail server."""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

KEEP = 200  # newest messages kept


@dataclass(frozen=True)
class Mail:
    received_at: float
    sender: str
    to: str
    subject: str
    body: str


class DevMailbox:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = _free_port(host)
        self._mails: deque[Mail] = deque(maxlen=KEEP)
        self._lock = threading.Lock()  # the SMTP server runs on its own thread
        self._controller = Controller(self, hostname=host, port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        msg = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        part = msg.get_body(preferencelist=("plain",))
        body = part.get_content() if part is not None else ""
        with self._lock:
            self._mails.append(Mail(time.time(), str(msg["From"] or ""), str(msg["To"] or ""),
                                    str(msg["Subject"] or ""), body))
        return "250 OK"

    def mails(self) -> list[Mail]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._mails))


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
