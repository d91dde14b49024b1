"""Importing the schema (Alembic, every test) stays light: no numba, no engine, no strategies."""

from __future__ import annotations

import subprocess
import sys


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_schema_imports_without_numba_or_the_engine() -> None:
    loaded = _loaded_after("import marketpulse.storage.models")
    assert "marketpulse.backtest.tables" in loaded  # the jobs table is part of the schema
    assert "numba" not in loaded
    assert not {"marketpulse.backtest.engine", "marketpulse.backtest.core", "marketpulse.strategies"} & loaded


def test_the_backtest_package_still_offers_the_engine_by_name() -> None:
    from marketpulse.backtest import Backtest
    from marketpulse.backtest.engine import Backtest as EngineBacktest

    assert Backtest is EngineBacktest
