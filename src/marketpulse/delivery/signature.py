"""Webhook signatures, in Stripe's scheme: `X-Pulse-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
`"<t>.<raw body>"` with the destination's signing secret (shown once when the destination is added).

A receiver verifies with `verify_signature(secret, header, body, now_s)`: it recomputes the HMAC, compares in
constant time, and refuses a timestamp more than `tolerance_s` (5 minutes) away from its clock, so a captured
request can't be replayed later. Retries are signed anew (fresh `t`), with the same `Idempotency-Key`.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Pulse-Signature"
TOLERANCE_S = 300


def sign(secret: str, body: bytes, timestamp_s: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp_s}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp_s},v1={mac}"


class BadSignature(ValueError):
    pass


def verify_signature(secret: str, header: str, body: bytes, now_s: int, tolerance_s: int = TOLERANCE_S) -> int:
    """The signed timestamp when `header` is a valid signature of `body` made within `tolerance_s`; else
    BadSignature saying why."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise BadSignature("no timestamp (t=…) in the signature header") from None
    if abs(now_s - timestamp) > tolerance_s:
        raise BadSignature(f"timestamp {timestamp} is more than {tolerance_s} s from now: a replay?")
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, v) for v in parts.get("v1", [])):
        raise BadSignature("no v1 signature matches the body")
    return timestamp
