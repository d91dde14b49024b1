"""The symbol page's chart: candles from the store and the candle library, and the indicator series drawn over
them, computed here by `marketpulse.indicators` (`core.py` pure; `views.py` the page and its JSON endpoint)."""
