"""`pulse tax import FILE --email USER`: the API's import from the command line; rejected rows on stderr by file and
line (exit 1, the rest stored), an unknown user or header exits 2, a second run changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from accounts.conftest import STRONG  # noqa: I001 (tests/accounts)
from marketpulse.cli.main import app as pulse
from marketpulse.runtime import Runtime
from marketpulse.settings import get_settings
from tax.test_layouts import KRAKEN_TRADES

runner = CliRunner()


async def invoke(args: list[str]) -> Result:
    return await asyncio.to_thread(runner.invoke, pulse, args)  # the command runs its own event loop


@pytest.fixture
def cli_env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PULSE_DATABASE_URL", db_url)
    monkeypatch.setenv("PULSE_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def test_import_a_kraken_export_for_a_user(cli_env: None, runtime: Runtime, tmp_path: Path) -> None:
    user = await runtime.services.accounts.create_user("Trader@example.com", STRONG, verified=True)
    path = tmp_path / "trades.csv"
    path.write_text(KRAKEN_TRADES + '"T3","O3","XETHZUSD","2024-03-21 10:00:00","swap","market",1,1,0,1,0,"",""\n')
    first = await invoke(["tax", "import", str(path), "--email", "trader@EXAMPLE.com"])
    assert first.exit_code == 1, first.output
    assert f"{path}: kraken-trades layout, 3 rows read, 2 transactions imported, 0 duplicates" in first.stdout
    assert f"error: {path}, line 4: type: 'swap' is not buy or sell" in first.stderr
    stored = await runtime.services.tax.transactions(user.id)
    assert [(t.type.value, t.asset, t.account) for t in stored] == [("buy", "BTC", "kraken"), ("sell", "ETH", "kraken")]

    again = await invoke(["tax", "import", str(path), "--email", "trader@example.com", "--account", "kraken"])
    assert "0 transactions imported, 2 duplicates skipped" in again.stdout
    assert len(await runtime.services.tax.transactions(user.id)) == 2


async def test_an_unknown_user_or_header_exits_2(cli_env: None, runtime: Runtime, tmp_path: Path) -> None:
    await runtime.services.accounts.create_user("t@example.com", STRONG, verified=True)
    path = tmp_path / "x.csv"
    path.write_text(KRAKEN_TRADES)
    nobody = await invoke(["tax", "import", str(path), "--email", "nobody@example.com"])
    assert nobody.exit_code == 2 and "--email: no user 'nobody@example.com'" in nobody.stderr
    path.write_text("when,what\n1,2\n")
    unknown = await invoke(["tax", "import", str(path), "--email", "t@example.com"])
    assert unknown.exit_code == 2 and f"error: {path}, line 1: file: header not recognised" in unknown.stderr
