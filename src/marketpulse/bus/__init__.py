"""Event bus: one small interface (`EventBus`), in-process and Redis Streams implementations."""

from marketpulse.bus.base import EventBus, Handler, Message, Subscription
from marketpulse.bus.factory import create_bus

__all__ = ["EventBus", "Handler", "Message", "Subscription", "create_bus"]
