"""`pulse demo|api|worker|ingest`: the long-running processes (see marketpulse.roles for the wiring)."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import typer

from marketpulse.cli.errors import fail

if TYPE_CHECKING:
    from marketpulse.settings import Settings


class Source(enum.StrEnum):
    replay = "replay"
    binance = "binance"


# Options default to None so an unset option falls back to its setting (PULSE_HOST, PULSE_PORT, PULSE_SOURCE).
HOST = typer.Option(None, "--host", help="Interface to listen on  [default: PULSE_HOST, else 127.0.0.1]")
PORT = typer.Option(None, "--port", help="Port to listen on  [default: PULSE_PORT, else 8000]")
SOURCE = typer.Option(None, "--source", help="Market data: replayed real data, or live Binance USD-M  "
                      "[default: PULSE_SOURCE, else replay]")


def resolve_settings(*, source: Source | None = None, host: str | None = None, port: int | None = None,
                     demo: bool = False) -> Settings:
    """The settings with the command line's options applied: an option given wins over its PULSE_* variable."""
    from marketpulse.settings import get_settings

    given: dict[str, Any] = {"source": source.value if source else None, "host": host, "port": port}
    overrides = {k: v for k, v in given.items() if v is not None}
    if demo:
        overrides["env"] = "dev"  # the demo is a local playground: its built-in ingest key is fine
        overrides["webhook_allow_private"] = True  # its webhook receivers are local
    return get_settings().model_copy(update=overrides)


def check_ingest_key(settings: Settings) -> None:
    """Refuse to expose the ingest endpoints behind the key everyone can read in the source."""
    if settings.env != "dev" and settings.uses_dev_ingest_key():
        fail("PULSE_INGEST_API_KEY is the built-in development key, which anyone can read: set it to a secret "
             "of your own (e.g. export PULSE_INGEST_API_KEY=$(openssl rand -hex 24)), or set PULSE_ENV=dev "
             "on a development machine")


def check_jwt_secret(settings: Settings) -> None:
    """Refuse to sign sessions with the key everyone can read in the source: anyone could forge a token."""
    if settings.env != "dev" and settings.uses_dev_jwt_secret():
        fail("PULSE_JWT_SECRET_KEY is the built-in development key, with which anyone can sign in as anyone: set "
             "it to a secret of your own, the same for every API process (e.g. export "
             "PULSE_JWT_SECRET_KEY=$(openssl rand -hex 32)), or set PULSE_ENV=dev on a development machine")


def check_port_free(host: str, port: int) -> None:
    """Fail in one line, before anything starts, when the port is taken (uvicorn would print tracebacks).
    Every address the host resolves to is tried, as asyncio's server binds them all ("localhost": ::1 and 127.0.0.1)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        fail(f"cannot listen on host {host!r} ({exc.strerror}): pass --host or set PULSE_HOST")
    for family, kind, proto, _, address in dict.fromkeys((i[0], i[1], i[2], "", i[4]) for i in infos):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is no conflict
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # asyncio binds v6 apart from v4
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    fail(f"port {port} is in use: pass --port or set PULSE_PORT")
                if exc.errno == errno.EACCES:
                    fail(f"port {port} needs privileges this user lacks: pass --port or set PULSE_PORT")
                fail(f"cannot listen on {host}:{port} ({exc.strerror}): pass --host/--port or set "
                     "PULSE_HOST/PULSE_PORT")


def _run(roles: set[str], settings: Settings, *, demo: bool = False, banner: str = "") -> None:
    from marketpulse import roles as role_wiring
    from marketpulse.logs import configure_logging
    from marketpulse.runtime import Runtime

    if roles & {"api", "ingest"}:
        check_ingest_key(settings)
    if "api" in roles:
        check_jwt_secret(settings)
        check_port_free(settings.host, settings.port)
    if banner:
        typer.echo(banner)
    configure_logging(settings)
    if demo:  # the demo owns its database: bring it to the newest schema first, and carry on its market time
        from marketpulse.demo import resume_market_time
        from marketpulse.storage.migrate import upgrade

        upgrade(settings.database_url)
        settings = asyncio.run(resume_market_time(settings))
    runtime = Runtime.open(settings)
    with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C before the loop's handlers are in place
        asyncio.run(_until_signalled(
            lambda stop: role_wiring.run(runtime, roles=roles, source=settings.source, host=settings.host,
                                         port=settings.port, demo=demo, stop=stop)
        ))
    _exit_without_teardown()


def _exit_without_teardown() -> None:
    """Everything the process opened is closed by now (`roles.run` closed the runtime): skip the interpreter's
    module-by-module teardown, which with numba, pyarrow and the web stack loaded takes seconds on a busy machine,
    so a stop ends well within the few seconds a supervisor waits before SIGKILL."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


async def _until_signalled(work: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    """Ctrl-C and SIGTERM (systemd, containers) both ask the roles to stop in order (`roles.run`); a second one
    cancels whatever is still stopping."""
    stop = asyncio.Event()
    task = asyncio.ensure_future(work(stop))

    def on_signal() -> None:
        if stop.is_set():
            task.cancel()
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(source: Source | None = SOURCE, host: str | None = HOST, port: int | None = PORT) -> None:
        """The whole platform in one process: migrates its database, replays market data, serves the dashboard."""
        settings = resolve_settings(source=source, host=host, port=port, demo=True)
        banner = f"marketpulse demo: http://{settings.host}:{settings.port}  (source: {settings.source}; Ctrl-C stops)"
        _run({"ingest", "worker", "api"}, settings, demo=True, banner=banner)

    @app.command()
    def api(host: str | None = HOST, port: int | None = PORT) -> None:
        """HTTP API, Socket.IO and dashboard (reads the store, subscribes to the bus)."""
        _run({"api"}, resolve_settings(host=host, port=port))

    @app.command()
    def worker() -> None:
        """Bus consumers: market recorder, volume-spike scanner, paper trading (run by one worker at a time: the
        holder of its lease; start as many workers as you like)."""
        _run({"worker"}, resolve_settings())

    @app.command()
    def ingest(source: Source | None = SOURCE) -> None:
        """Publish market data from SOURCE to the bus."""
        _run({"ingest"}, resolve_settings(source=source))
