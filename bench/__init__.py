"""Benchmarks: each module measures one path against a baseline in the same run and prints a Markdown table."""

import os

# Benchmarks measure the platform, not its per-plan API rate limits: any Settings a benchmark builds (and any
# `pulse` process it starts, which inherits the environment) has them off unless the caller says otherwise.
os.environ.setdefault("PULSE_RATE_LIMITS", "off")
