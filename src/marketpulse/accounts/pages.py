"""The pages mailed links lead to, and the demo's mailbox.

    GET  /verify-email?token=…     a button that confirms the address (POST), so a mail scanner that merely
    POST /verify-email             fetches the link doesn't spend the single-use token
    GET  /unlock?token=…           a button that lifts the sign-in lock (POST /unlock), likewise
    POST /unlock
    GET  /reset-password?token=…   a form for the new password
    POST /reset-password
    GET  /dev/mail                 `pulse demo` only (PULSE_ENV=dev with its local mailbox): the mail it sent

Plain forms, no script: they work under the site's Content-Security-Policy and without JavaScript. They look like
the rest of the site (`web/account_pages.render`: the shared template, theme and nav).
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse

from marketpulse.accounts.core import password_problems
from marketpulse.accounts.service import AccountsService, InvalidEmailToken
from marketpulse.accounts.views import get_accounts
from marketpulse.web.account_pages import render

router = APIRouter(include_in_schema=False)

LINK = re.compile(r"https?://[^\s<>\"']+")


def _page(title: str, body: str, code: int = 200) -> HTMLResponse:
    return render(title, body=body, code=code)


async def _form(request: Request) -> dict[str, str]:
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=10)
    return {k: v[0] for k, v in fields.items()}


def _token_field(token: str) -> str:
    return f'<input type=hidden name=token value="{html.escape(token, quote=True)}">'


@router.get("/verify-email", response_class=HTMLResponse)
async def verify_email_page(token: str = "") -> HTMLResponse:
    return _page("Confirm your address", f"<section class=card><form method=post action=/verify-email>"
                                         f"{_token_field(token)}<button class=btn>Confirm my address</button>"
                                         "</form></section>")


@router.post("/verify-email", response_class=HTMLResponse)
async def verify_email_submit(request: Request, accounts: AccountsService = Depends(get_accounts)) -> HTMLResponse:
    try:
        user = await accounts.verify_email((await _form(request)).get("token", ""))
    except InvalidEmailToken as exc:
        return _page("This link doesn't work", f"<p class='msg bad'>{html.escape(str(exc))}</p>", 400)
    return _page("Address confirmed", f"<section class=card><p>{html.escape(user.email or '')} is confirmed: you "
                                     "can sign in now.</p><p><a class=btn href=/signin?next=/onboarding>Sign in</a>"
                                     "</p></section>")


@router.get("/unlock", response_class=HTMLResponse)
async def unlock_page(token: str = "") -> HTMLResponse:
    return _page("Unlock your account", "<p>Too many failed sign-ins locked this account.</p>"
                                        f"<form method=post action=/unlock>{_token_field(token)}"
                                        "<button>Unlock my account</button></form>")


@router.post("/unlock", response_class=HTMLResponse)
async def unlock_submit(request: Request, accounts: AccountsService = Depends(get_accounts)) -> HTMLResponse:
    try:
        await accounts.unlock((await _form(request)).get("token", ""))
    except InvalidEmailToken as exc:
        return _page("This link doesn't work", f"<p class=bad>{html.escape(str(exc))}</p>", 400)
    return _page("Account unlocked", "<p>You can sign in again.</p>")


def _reset_form(token: str, problem: str = "") -> str:
    bad = f"<p class='msg bad'>{html.escape(problem)}</p>" if problem else ""
    return (f"<section class=card>{bad}<form method=post action=/reset-password>{_token_field(token)}<label "
            "class=field>New password <input type=password name=new_password autocomplete=new-password required "
            "minlength=12></label><p class=muted>At least 12 characters, with an upper-case letter, a digit and a "
            "special character.</p><button class=btn>Set the new password</button></form></section>")


@router.get("/reset-password", response_class=HTMLResponse)
async def reset_password_page(token: str = "") -> HTMLResponse:
    return _page("Choose a new password", _reset_form(token))


@router.post("/reset-password", response_class=HTMLResponse)
async def reset_password_submit(request: Request,
                                accounts: AccountsService = Depends(get_accounts)) -> HTMLResponse:
    form = await _form(request)
    token, password = form.get("token", ""), form.get("new_password", "")
    problems = password_problems(password)
    if problems:
        return _page("Choose a new password", _reset_form(token, "The password needs " + ", ".join(problems)), 422)
    try:
        await accounts.reset_password(token, password)
    except InvalidEmailToken as exc:
        return _page("This link doesn't work", f"<p class='msg bad'>{html.escape(str(exc))}</p>", 400)
    return _page("Password changed", "<section class=card><p>Every session has ended: sign in with the new "
                                     "password.</p><p><a class=btn href=/signin>Sign in</a></p></section>")


@router.get("/dev/mail", response_class=HTMLResponse)
async def dev_mail(request: Request, accounts: AccountsService = Depends(get_accounts)) -> HTMLResponse:
    mailbox = accounts.dev_mailbox
    if accounts.settings.env != "dev" or mailbox is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Not Found")
    items = []
    for m in mailbox.mails():
        when = datetime.fromtimestamp(m.received_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        body = LINK.sub(lambda found: f'<a href="{found.group(0)}">{found.group(0)}</a>', html.escape(m.body))
        items.append(f"<div class=mail data-to='{html.escape(m.to, quote=True)}'><b>{html.escape(m.subject)}</b>"
                     f"<br>to {html.escape(m.to)} · {when}"
                     f"<pre class=mailbody>{body}</pre></div>")
    intro = "<p>Mail <code>pulse demo</code> sent (kept in memory, newest first).</p>"
    mails = "".join(items) or "<p>No mail yet.</p>"
    return render("Demo mailbox", body=f"<section class=card>{intro}{mails}</section>", narrow=False)
