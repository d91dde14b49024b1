"""Which providers serve each channel: a primary, and a fallback where one is configured (SMS: Twilio then Vonage;
email: the account relay then `PULSE_DELIVERY_SMTP_FALLBACK_HOST`)."""

from __future__ import annotations

from marketpulse.delivery.channels.apprise_channel import AppriseProvider
from marketpulse.delivery.channels.base import Provider
from marketpulse.delivery.channels.discord import DiscordProvider
from marketpulse.delivery.channels.email import EmailProvider
from marketpulse.delivery.channels.in_app import InAppProvider
from marketpulse.delivery.channels.push import PushProvider
from marketpulse.delivery.channels.slack import SlackProvider
from marketpulse.delivery.channels.sms import SmsVia
from marketpulse.delivery.channels.telegram import TelegramProvider
from marketpulse.delivery.channels.twilio import TwilioProvider
from marketpulse.delivery.channels.vonage import VonageProvider
from marketpulse.delivery.channels.webhook import WebhookProvider
from marketpulse.settings import Settings


def providers_for(settings: Settings) -> dict[str, list[Provider]]:
    """Channel → providers in the order they are tried."""
    sms: list[Provider] = [SmsVia(TwilioProvider())]
    if settings.vonage_api_key:
        sms.append(SmsVia(VonageProvider()))
    email: list[Provider] = [EmailProvider("smtp")]
    if settings.delivery_smtp_fallback_host:
        email.append(EmailProvider("smtp_fallback", fallback=True))
    return {
        "email": email, "sms": sms, "telegram": [TelegramProvider()], "discord": [DiscordProvider()],
        "slack": [SlackProvider()], "webhook": [WebhookProvider()], "push": [PushProvider()],
        "in_app": [InAppProvider()], "apprise": [AppriseProvider()],
    }
