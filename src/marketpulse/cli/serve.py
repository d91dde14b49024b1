"""`pulse demo|api|worker|ingest`: the long-running processes (see marketpulse.roles for the wiring)."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import signal
from collections.abc import Callable, Coroutine
from typing import Any

import typer


class Source(enum.StrEnum):
    replay = "replay"
    binance = "binance"


HOST = typer.Option("127.0.0.1", "--host", help="Interface to listen on")
PORT = typer.Option(8000, "--port", help="Port to listen on")
SOURCE = typer.Option(Source.replay, "--source", help="Market data: replayed real data, or live Binance USD-M")


def _run(roles: set[str], *, source: str = "replay", host: str = "127.0.0.1", port: int = 8000,
         demo: bool = False, paper: bool = True) -> None:
    from marketpulse import roles as role_wiring
    from marketpulse.logs import configure_logging
    from marketpulse.runtime import Runtime
    from marketpulse.settings import get_settings

    settings = get_settings()
    configure_logging(settings)
    if demo:  # the demo owns its database: bring it to the newest schema first
        from marketpulse.storage.migrate import upgrade

        upgrade(settings.database_url)
    runtime = Runtime.open(settings)
    with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C before the loop's handlers are in place
        asyncio.run(_until_signalled(
            lambda stop: role_wiring.run(runtime, roles=roles, source=source, host=host, port=port, demo=demo,
                                         paper=paper, stop=stop)
        ))


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
    def demo(source: Source = SOURCE, host: str = HOST, port: int = PORT) -> None:
        """The whole platform in one process: migrates its database, replays market data, serves the dashboard."""
        typer.echo(f"marketpulse demo: http://{host}:{port}  (source: {source.value}; Ctrl-C stops)")
        _run({"ingest", "worker", "api"}, source=source.value, host=host, port=port, demo=True)

    @app.command()
    def api(host: str = HOST, port: int = PORT) -> None:
        """HTTP API, Socket.IO and dashboard (reads the store, subscribes to the bus)."""
        _run({"api"}, host=host, port=port)

    @app.command()
    def worker(
        paper: bool = typer.Option(
            True, "--paper/--no-paper",
            help="Run paper trading here. Scaled out, exactly one worker runs it: its deployments need every minute",
        ),
    ) -> None:
        """Bus consumers: market recorder, volume-spike scanner, paper trading."""
        _run({"worker"}, paper=paper)

    @app.command()
    def ingest(source: Source = SOURCE) -> None:
        """Publish market data from SOURCE to the bus."""
        _run({"ingest"}, source=source.value)
