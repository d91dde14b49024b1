"""What an address looks like on each channel (pure): refused with a reason the API shows on the `address` field."""

from __future__ import annotations

import re

from marketpulse.delivery.ssrf import UnsafeUrl, check_url_shape

EMAIL = re.compile(r"^[^@\s<>\"']{1,64}@[^@\s<>\"']+\.[^@\s<>\"']+$")
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
TELEGRAM_CHAT = re.compile(r"^(-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$")
URL_CHANNELS = ("webhook", "discord", "slack")


class BadAddress(ValueError):
    pass


def normalise(channel: str, address: str) -> str:
    """The address as stored, or BadAddress saying what is wrong with it."""
    address = address.strip()
    if channel == "email":
        if len(address) > 320 or not EMAIL.match(address):
            raise BadAddress("must be an email address")
    elif channel == "sms":
        if not E164.match(address):
            raise BadAddress("must be a phone number in E.164 form, e.g. +14155550123")
    elif channel == "telegram":
        if not TELEGRAM_CHAT.match(address):
            raise BadAddress("must be a Telegram chat id (a number) or a @channel name")
    elif channel in URL_CHANNELS:
        _check_url(address, channel)
    elif channel == "push":
        from marketpulse.delivery.channels.push import parse_subscription

        try:
            _check_url(str(parse_subscription(address)["endpoint"]), channel)
        except ValueError as exc:
            raise BadAddress(str(exc)) from None
    elif channel == "apprise":
        from marketpulse.delivery.channels.apprise_channel import check_apprise_url

        try:
            check_apprise_url(address)
        except ValueError as exc:
            raise BadAddress(str(exc)) from None
    return address


def _check_url(url: str, channel: str) -> None:
    try:
        check_url_shape(url)
    except UnsafeUrl as exc:
        raise BadAddress(str(exc)) from None
    if channel == "discord" and "/api/webhooks/" not in url:
        raise BadAddress("must be a Discord webhook URL (…/api/webhooks/<id>/<token>)")
    if channel == "slack" and "/services/" not in url:
        raise BadAddress("must be a Slack incoming-webhook URL (…/services/…)")


def masked(channel: str, address: str) -> str:
    """How history shows a destination without repeating secrets in URLs (webhook tokens) in full."""
    if channel in (*URL_CHANNELS, "apprise", "push"):
        return address[:32] + "…" if len(address) > 36 else address
    return address
