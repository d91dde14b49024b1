"""The account pages: sign-up, sign-in, "check your mail", forgot password, onboarding, settings (with billing),
pricing (with paying by card or USDT), and the pages Stripe Checkout returns to (/checkout/success, /cancel).

Each is a template over `base.html` (the dashboard's theme plus `site.css`, the nav bar from `site.js`) and a
script under /static: the pages hold no data and no inline script (the CSP forbids it); their scripts call the
JSON API with the browser's cookies. `render` is also how the mailed-link pages (`accounts/pages.py`) look.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}  # tokens ride in some of these URLs


def render(title: str, *, template: str = "base.html", body: str = "", scripts: tuple[str, ...] = (),
           narrow: bool = True, code: int = 200, **extra: Any) -> HTMLResponse:
    """A page of the site: `body` is trusted HTML (callers escape what they interpolate)."""
    doc = templates.get_template(template).render(title=title, body=body, scripts=scripts, narrow=narrow, **extra)
    return HTMLResponse(doc, status_code=code, headers=NO_STORE)


def _dev_mail(request: Request) -> bool:
    """`pulse demo` keeps its mail at /dev/mail: the pages that say "check your mail" point there."""
    accounts = request.app.state.runtime.services.accounts
    return bool(accounts.settings.env == "dev" and accounts.dev_mailbox is not None)


@router.get("/signup", response_class=HTMLResponse)
async def signup_page() -> HTMLResponse:
    return render("Create your account", template="signup.html", scripts=("signup.js",))


@router.get("/signin", response_class=HTMLResponse)
async def signin_page() -> HTMLResponse:
    return render("Sign in", template="signin.html", scripts=("wallet.js", "signin.js"))


@router.get("/verify", response_class=HTMLResponse)
async def verify_page(request: Request) -> HTMLResponse:
    return render("Check your mail", template="verify.html", scripts=("verify.js",), dev_mail=_dev_mail(request))


@router.get("/forgot-password", response_class=HTMLResponse)
async def forgot_page(request: Request) -> HTMLResponse:
    return render("Forgot your password?", template="forgot.html", scripts=("forgot.js",),
                  dev_mail=_dev_mail(request))


@router.get("/onboarding", response_class=HTMLResponse)
async def onboarding_page() -> HTMLResponse:
    return render("Welcome to marketpulse", template="onboarding.html", scripts=("prefs.js", "onboarding.js"),
                  narrow=False)


@router.get("/settings", response_class=HTMLResponse)
async def settings_page() -> HTMLResponse:
    return render("Settings", template="settings.html",
                  scripts=("wallet.js", "prefs.js", "settings.js", "pay.js", "billing.js"), narrow=False)


@router.get("/pricing", response_class=HTMLResponse)
async def pricing_page() -> HTMLResponse:
    return render("Plans and pricing", template="pricing.html", scripts=("pricing.js", "pay.js"), narrow=False)


@router.get("/checkout/success", response_class=HTMLResponse)
async def checkout_success() -> HTMLResponse:
    """Where Stripe Checkout returns the browser after paying (the plan changes when the webhook lands)."""
    return render("Payment received", template="checkout.html", scripts=("billing.js",), outcome="success")


@router.get("/checkout/cancel", response_class=HTMLResponse)
async def checkout_cancel() -> HTMLResponse:
    return render("Payment cancelled", template="checkout.html", outcome="cancel")
