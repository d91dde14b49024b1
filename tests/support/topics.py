"""Bus helpers for tests: untyped test topics, payloads as builtins, handler messages as the bus decodes them."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any, TypeVar

import msgspec

from marketpulse.bus import Message
from marketpulse.bus.topics import Topic

P = TypeVar("P")


@cache
def T(name: str) -> Topic[dict[str, Any]]:  # noqa: N802 - reads like the topic it stands for
    return Topic(name, dict[str, Any])


def plain(events: Iterable[tuple[Topic[Any], Any]]) -> list[tuple[Topic[Any], Any]]:
    """(topic, payload) pairs with payloads as JSON builtins, for asserting on what a publisher produced."""
    return [(topic, msgspec.to_builtins(payload)) for topic, payload in events]


def message(topic: Topic[P], payload: Any, msg_id: str = "1-0") -> Message[P]:
    """The Message a handler gets for `payload` (a Struct or builtins), decoded as the bus decodes it."""
    return Message(msg_id, topic.name, topic.decode(msgspec.json.encode(payload)).payload)
