"""Messages per channel (pure): one notification (`message` as enqueued) rendered for email (text + HTML),
Telegram (HTML parse mode), Discord (an embed), Slack (blocks), SMS, web push, in-app and webhooks (JSON).

The enqueued message is a small dict: `title`, `text`, and optionally `kind` (the event type: price, volume_spike,
signal, fill, verification…), `symbol`, `url` (else a link to the symbol on the dashboard), `fields` (name → value:
numbers are formatted as on the dashboard) and `time_ms`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

SMS_MAX = 320  # two SMS segments
DISCORD_COLOR = 0x2F81F7


def format_number(value: float) -> str:
    """As the dashboard shows prices and volumes: thousands separated, 2 decimals from 1,000, 4 from 1, else up to
    8 significant digits (small-cap prices)."""
    size = abs(value)
    if size >= 1000:
        return f"{value:,.2f}"
    if size >= 1:
        return f"{value:,.4f}".rstrip("0").rstrip(".")
    return f"{value:.8g}"


def _field_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return format_number(float(value))


@dataclass(frozen=True)
class Rendered:
    title: str
    text: str
    symbol: str | None
    url: str | None
    kind: str
    fields: dict[str, str]
    items: list[dict[str, Any]] = field(default_factory=list)  # a digest's alerts (delivery.cadence)


def render(message: dict[str, Any], public_url: str) -> Rendered:
    symbol = message.get("symbol") or None
    url = message.get("url") or (f"{public_url.rstrip('/')}/?symbol={quote(str(symbol))}" if symbol else None)
    fields = {str(k): _field_text(v) for k, v in (message.get("fields") or {}).items()}
    return Rendered(title=str(message.get("title") or "marketpulse alert"), text=str(message.get("text") or ""),
                    symbol=str(symbol) if symbol else None, url=url, kind=str(message.get("kind") or "alert"),
                    fields=fields, items=list(message.get("items") or []))


def plain_text(r: Rendered) -> str:
    lines = [r.title, r.text, *(f"{k}: {v}" for k, v in r.fields.items())]
    if r.url:
        lines.append(r.url)
    return "\n".join(line for line in lines if line)


def email_parts(r: Rendered) -> tuple[str, str, str]:
    """(subject, text, html)."""
    rows = "".join(f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                   for k, v in r.fields.items())
    link = f"<p><a href=\"{html.escape(r.url)}\">Open {html.escape(r.symbol or 'marketpulse')}</a></p>" if r.url else ""
    body = (f"<h2>{html.escape(r.title)}</h2><p>{html.escape(r.text).replace(chr(10), '<br>')}</p>"
            f"{f'<table>{rows}</table>' if rows else ''}{link}")
    return r.title, plain_text(r), f"<!doctype html><html><body>{body}</body></html>"


def telegram_text(r: Rendered) -> str:
    """For `parse_mode=HTML` (Telegram's HTML subset: b, a, code)."""
    lines = [f"<b>{html.escape(r.title)}</b>", html.escape(r.text)]
    lines += [f"{html.escape(k)}: <code>{html.escape(v)}</code>" for k, v in r.fields.items()]
    if r.url:
        lines.append(f"<a href=\"{html.escape(r.url)}\">{html.escape(r.symbol or 'marketpulse')}</a>")
    return "\n".join(line for line in lines if line)


def discord_payload(r: Rendered, time_ms: int | None) -> dict[str, Any]:
    embed: dict[str, Any] = {"title": r.title[:256], "description": r.text[:4096], "color": DISCORD_COLOR,
                             "fields": [{"name": k[:256], "value": v[:1024], "inline": True}
                                        for k, v in list(r.fields.items())[:25]]}
    if r.url:
        embed["url"] = r.url
    if time_ms is not None:
        from marketpulse.times import utc_text

        embed["timestamp"] = utc_text(time_ms, "%Y-%m-%dT%H:%M:%SZ")
    return {"username": "marketpulse", "embeds": [embed], "allowed_mentions": {"parse": []}}


def slack_payload(r: Rendered) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": r.title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": r.text or r.title}},
    ]
    if r.fields:
        blocks.append({"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"}
                                                     for k, v in list(r.fields.items())[:10]]})
    if r.url:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{r.url}|{r.symbol or 'open'}>"}]})
    return {"text": plain_text(r)[:3000], "blocks": blocks}


def sms_text(r: Rendered) -> str:
    text = f"{r.title}: {r.text}" if r.text else r.title
    return text if len(text) <= SMS_MAX else text[: SMS_MAX - 1] + "…"


def card(r: Rendered) -> dict[str, Any]:
    """Web push, in-app and webhook bodies share this shape."""
    out: dict[str, Any] = {"title": r.title, "text": r.text, "kind": r.kind, "symbol": r.symbol, "url": r.url,
                           "fields": r.fields}
    if r.items:
        out["items"] = r.items
    return out
