"""GET /dev/receivers: what the demo's local Telegram and webhook receivers received (`pulse demo` only, as
/dev/mail is: PULSE_ENV=dev with its receivers running; anywhere else a 404)."""

from __future__ import annotations

import html

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse

from marketpulse.times import utc_text
from marketpulse.web.account_pages import render

router = APIRouter(tags=["dev"])


@router.get("/dev/receivers", response_class=HTMLResponse, responses={404: {"description": "Not `pulse demo`"}})
async def dev_receivers(request: Request) -> HTMLResponse:
    services = request.app.state.runtime.services
    receivers = services.delivery.dev_receivers
    if services.delivery.settings.env != "dev" or receivers is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Not Found")
    sections = []
    for kind, heading, who in (("telegram", "Telegram (Bot API sendMessage)", "chat"),
                               ("webhook", "Webhooks (signed JSON POSTs)", "hook")):
        items = []
        for r in receivers.received(kind):
            extra = ""
            if kind == "webhook":
                extra = (f" · signature {html.escape(r.signature or '')}"
                         f"{' · <b>repeat</b> of an earlier key' if r.repeat else ''}"
                         f"<br><code class=muted>Idempotency-Key {html.escape(r.key or '—')}</code>")
            items.append(f"<div class=mail data-kind={kind} data-to='{html.escape(r.to, quote=True)}'>"
                         f"<b>{html.escape(r.title)}</b><br>{who} {html.escape(r.to)} · "
                         f"{utc_text(r.received_at_ms, '%Y-%m-%d %H:%M:%S UTC')}{extra}"
                         f"<pre class=mailbody>{html.escape(r.text)}</pre></div>")
        sections.append(f"<h2>{heading}</h2>" + ("".join(items) or "<p>Nothing yet.</p>"))
    intro = ("<p>What <code>pulse demo</code>'s local receivers got (kept in memory, newest first). Telegram: "
             f"<code>{html.escape(receivers.base_url)}</code> stands in for api.telegram.org; webhooks: "
             f"<code>{html.escape(receivers.hook_url('<name>'))}</code>.</p>")
    return render("Demo receivers", body=f"<section class=card>{intro}{''.join(sections)}</section>", narrow=False)
