"""Request guards shared by the ingest endpoints."""

from __future__ import annotations

import hmac

from fastapi import Header, HTTPException, Request, status

from marketpulse.settings import Settings


def check_api_key(settings: Settings, given: str | None) -> None:
    """401 unless `given` equals the ingest key; constant-time so the key can't be guessed byte by byte."""
    expected = settings.ingest_api_key.get_secret_value().encode()
    if not given or not hmac.compare_digest(given.encode(), expected):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="missing or invalid X-API-Key")


def require_api_key(request: Request, x_api_key: str | None = Header(default=None)) -> None:
    """Dependency: runs before the body is parsed, so a bad key answers 401 even when the body is invalid."""
    check_api_key(request.app.state.runtime.settings, x_api_key)


async def read_limited_body(request: Request) -> bytes:
    """The raw body, or 413 once it passes `max_body_bytes` (checked while streaming, not after)."""
    limit = request.app.state.runtime.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=f"body over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
