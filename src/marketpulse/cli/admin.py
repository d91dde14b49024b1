"""`pulse admin …`: operator commands, starting with creating the first administrator.

    pulse admin create-user --email ops@example.com --role admin                 # asks for the password twice
    printf '%s\\n' "$PW" | pulse admin create-user --email ops@example.com --role admin   # from standard input
    pulse admin create-user --email ops@example.com --password "$PW"            # visible in the process list

The address counts as verified (the operator vouches for it). Bad input exits 2 with one line naming the option.
"""

from __future__ import annotations

import asyncio
import sys

import typer

from marketpulse.accounts.core import Role
from marketpulse.cli.errors import fail

app = typer.Typer(no_args_is_help=True, help="Administration: users.")


@app.command("create-user")
def create_user(
    email: str = typer.Option(..., "--email", help="The new user's address (unique, whatever its case)"),
    role: str = typer.Option("user", "--role", help="user or admin"),
    plan: str = typer.Option("free", "--plan", help="free, pro, elite (premium) or enterprise"),
    password: str | None = typer.Option(
        None, "--password", help="Else read from standard input, or asked for when that is a terminal"
    ),
) -> None:
    """Create a user who can sign in at once (address verified)."""
    from pydantic import TypeAdapter, ValidationError

    from marketpulse.accounts.core import password_problems
    from marketpulse.accounts.plans import UnknownPlan, plan_named
    from marketpulse.accounts.schemas import Email

    try:
        address = str(TypeAdapter(Email).validate_python(email))
    except ValidationError as exc:
        fail(f"--email: {exc.errors()[0]['msg']}")
    if role not in {r.value for r in Role}:
        fail(f"--role: {role!r} is not one of {', '.join(r.value for r in Role)}")
    try:
        plan_name = plan_named(plan).name
    except UnknownPlan as exc:
        fail(f"--plan: {exc}")
    secret = password if password is not None else _read_password()
    problems = password_problems(secret)
    if problems:
        fail("--password: the password needs " + ", ".join(problems))
    user_id = asyncio.run(_create(address, secret, Role(role), plan_name))
    typer.echo(f"created {role} {address} (id {user_id}, plan {plan_name})")


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


async def _create(email: str, password: str, role: Role, plan: str) -> str:
    from marketpulse.accounts.service import AccountsService, EmailTaken
    from marketpulse.clock import SystemClock
    from marketpulse.settings import get_settings
    from marketpulse.storage.database import create_engine, session_factory
    from marketpulse.storage.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url)  # the first admin may be created on a fresh database
    engine = create_engine(settings.database_url)
    try:
        accounts = AccountsService(session_factory(engine), SystemClock(), settings)
        user = await accounts.create_user(email, password, role=role, plan=plan, verified=True)
    except EmailTaken as exc:
        fail(f"--email: {exc}")
    finally:
        await engine.dispose()
    return user.id
