"""`pulse admin create-user`: the first admin, with the password from --password or standard input."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from marketpulse.accounts.tables import UserRow
from marketpulse.cli.main import app as pulse
from marketpulse.runtime import Runtime
from marketpulse.settings import get_settings

from .conftest import STRONG, bearer, signin

runner = CliRunner()


async def invoke(args: list[str], input: str | None = None) -> Result:
    """The command runs its own event loop (asyncio.run), so it runs on a thread beside the test's."""
    return await asyncio.to_thread(runner.invoke, pulse, args, input)


@pytest.fixture
def cli_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PULSE_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def test_create_an_admin_from_stdin_who_can_sign_in(cli_env: None, client: httpx.AsyncClient,
                                                         runtime: Runtime) -> None:
    result = await invoke(["admin", "create-user", "--email", "Ops@Example.com", "--role", "admin"], STRONG + "\n")
    assert result.exit_code == 0, result.output
    assert "created admin Ops@example.com" in result.output and STRONG not in result.output
    tokens = await signin(client, "ops@example.com")
    me = (await client.get("/api/v1/auth/me", headers=bearer(tokens))).json()
    assert (me["role"], me["plan"], me["email_verified"]) == ("admin", "free", True)

    again = await invoke(["admin", "create-user", "--email", "OPS@example.com", "--password", STRONG])
    assert again.exit_code == 2 and "--email" in again.output and "already exists" in again.output
    async with runtime.sessions() as s:
        assert len(list((await s.execute(select(UserRow))).scalars())) == 1


async def test_create_a_user_with_a_plan_from_the_option(cli_env: None, runtime: Runtime) -> None:
    result = await invoke(["admin", "create-user", "--email", "t@example.com", "--plan", "premium",
                           "--password", STRONG])
    assert result.exit_code == 0, result.output
    async with runtime.sessions() as s:
        user = (await s.execute(select(UserRow))).scalar_one()
    assert (user.role, user.plan) == ("user", "elite")


@pytest.mark.parametrize(("args", "names"), [
    (["--email", "not-an-address", "--password", STRONG], "--email"),
    (["--email", "u@example.com", "--role", "root", "--password", STRONG], "--role"),
    (["--email", "u@example.com", "--plan", "gold", "--password", STRONG], "--plan"),
    (["--email", "u@example.com", "--password", "weak"], "--password"),
])
def test_bad_options_exit_2_naming_the_option(cli_env: None, args: list[str], names: str) -> None:
    result = runner.invoke(pulse, ["admin", "create-user", *args])
    assert result.exit_code == 2 and result.output.startswith(f"error: {names}"), result.output
