"""The fake Stripe server the tests point the official `stripe` client at (PULSE_STRIPE_API_BASE).

It lives in `marketpulse.payments.devstripe` because `pulse demo` starts it too (so "upgrade by card" works end to
end without Stripe); this module is the tests' door to it, plus a signer of its own that doesn't share code with
the verifier under test.
"""

from __future__ import annotations

import hashlib
import hmac

from marketpulse.payments.devstripe import FakeStripe, Price, parse_form

__all__ = ["FakeStripe", "Price", "parse_form", "stripe_signature"]


def stripe_signature(payload: bytes, secret: str, t: int) -> str:
    """`Stripe-Signature` as Stripe documents it: t=<unix time>,v1=hex(HMAC-SHA256(secret, "<t>.<payload>"))."""
    return f"t={t},v1={hmac.new(secret.encode(), str(t).encode() + b'.' + payload, hashlib.sha256).hexdigest()}"
