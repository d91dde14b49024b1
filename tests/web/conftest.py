"""Fixtures shared by the browser tests: one headless Chromium per test (tests/support/browser.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from support.browser import chromium


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched
