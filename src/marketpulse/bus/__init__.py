"""Event bus: one small interface (`EventBus`), in-process and Redis Streams implementations."""

from marketpulse.bus.base import DeadLetter, EventBus, Handler, Message, Subscription
from marketpulse.bus.factory import create_bus, key_prefix

__all__ = ["DeadLetter", "EventBus", "Handler", "Message", "Subscription", "create_bus", "key_prefix"]
