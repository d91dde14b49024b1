"""The alerts page, `/alerts`: a signed-in user's rules built with a form (not JSON), previewed over history, saved,
paused, resumed and deleted; where they are delivered (the user's destinations, added and verified here); their
credit balance and alert history.

The page holds no data: `alerts.js` calls the JSON API (`/api/v1/alerts/*`, `/api/v1/account/destinations`,
`/api/v1/account/credits`, `/api/v1/watchlist`) with the browser's cookies. What the form offers (fields, operators,
events, intervals, frequencies, limits) rides along as bootstrap JSON from `model`, the one definition the API
validates with, so the form can't offer what the API refuses.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from marketpulse.marketdata.intervals import Interval
from marketpulse.rules import model
from marketpulse.rules.views import PREVIEW_MAX_DAYS
from marketpulse.web.account_pages import render

router = APIRouter(include_in_schema=False)

FIELD_LABELS = {
    "price": "Last price", "mark_price": "Mark price", "change_pct_24h": "24h change %",
    "change_pct_1h": "1h change %", "change_pct_4h": "4h change %", "quote_volume_24h": "24h quote volume",
    "volume_ratio_1h": "Volume ÷ previous hour", "funding_rate": "Funding rate",
    "open_interest_usd": "Open interest (USD)", "open_interest_change_pct_1h": "Open interest 1h change %",
    "rsi": "RSI", "ema": "EMA", "sma": "SMA", "atr": "ATR", "bb_upper": "Bollinger upper",
    "bb_middle": "Bollinger middle", "bb_lower": "Bollinger lower",
}
OP_LABELS = {
    "gt": "greater than", "gte": "at least", "lt": "less than", "lte": "at most", "crosses_above": "crosses above",
    "crosses_below": "crosses below", "crosses": "crosses", "moves_up_pct": "moves up % within",
    "moves_down_pct": "moves down % within", "enters_channel": "enters channel", "exits_channel": "exits channel",
}
EVENT_LABELS = {"volume_spike": "Volume spike", "paper_fill": "One of my paper fills",
                "strategy_signal": "Strategy signal"}
FREQUENCY_LABELS = {"once": "Only once (then the rule pauses)", "once_per_bar": "Once per bar",
                    "once_per_bar_close": "Once per bar close", "every_time": "Every time"}


def vocabulary() -> dict[str, Any]:
    assert set(FIELD_LABELS) == set(model.MARKET_FIELDS + model.INDICATORS)
    assert set(OP_LABELS) == set(model.OPS) and set(EVENT_LABELS) == set(model.EVENTS)
    return {
        "fields": [{"name": f, "label": FIELD_LABELS[f], "indicator": f in model.INDICATORS,
                    "movable": f in model.MOVABLE_FIELDS} for f in model.MARKET_FIELDS + model.INDICATORS],
        "ops": [{"name": o, "label": OP_LABELS[o],
                 "operands": ["lower", "upper"] if o in model.CHANNEL_OPS else
                 ["value", "window"] if o in model.MOVE_OPS else ["value"]} for o in model.OPS],
        "events": [{"name": e, "label": EVENT_LABELS[e]} for e in model.EVENTS],
        "alertTypes": ["SPIKE", "HALF_UPDATE", "FULL_UPDATE"],
        "intervals": [i.value for i in Interval],
        "frequencies": [{"name": f, "label": FREQUENCY_LABELS[f]} for f in model.FREQUENCIES],
        "maxConditions": model.MAX_CONDITIONS,
        "previewMaxDays": PREVIEW_MAX_DAYS,
    }


@router.get("/alerts", response_class=HTMLResponse)
async def alerts_page() -> HTMLResponse:
    return render("Alerts", template="alerts.html", scripts=("alerts.js",), narrow=False, bootstrap=vocabulary())
