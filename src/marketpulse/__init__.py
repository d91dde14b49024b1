"""marketpulse: crypto market intelligence, alerting and trading in one Python package."""

__version__ = "0.1.0"
