"""The Socket.IO client is served from a configured node_modules, else ./node_modules of the working directory, and
never from a directory guessed from where the package's source files are (a non-editable install has no checkout)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from marketpulse.settings import Settings
from marketpulse.web.assets import VENDOR_FILES, vendor_router

CLIENT = "socket.io.min.js"


def fake_node_modules(root: Path, marker: str) -> Path:
    path = root / "node_modules" / VENDOR_FILES[CLIENT]
    path.parent.mkdir(parents=True)
    path.write_text(f"/* {marker} */")
    return root / "node_modules"


def get(app: FastAPI) -> httpx.Response:
    async def one() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.get(f"/vendor/{CLIENT}")

    return asyncio.run(one())


def fetch(settings: Settings) -> httpx.Response:
    app = FastAPI()
    app.include_router(vendor_router(settings))
    return get(app)


def test_configured_directory_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configured = fake_node_modules(tmp_path / "elsewhere", "configured")
    fake_node_modules(tmp_path / "cwd", "working directory")
    monkeypatch.chdir(tmp_path / "cwd")  # the setting wins over ./node_modules
    r = fetch(Settings(node_modules_dir=configured))
    assert r.status_code == 200 and r.text == "/* configured */"
    assert r.headers["content-type"].startswith("text/javascript")


def test_default_is_node_modules_of_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    fake_node_modules(tmp_path, "working directory")
    monkeypatch.chdir(tmp_path)
    r = fetch(Settings())
    assert r.status_code == 200 and r.text == "/* working directory */"


def test_an_installed_package_without_node_modules_says_how_to_fix_it(tmp_path: Path, monkeypatch) -> None:
    """Started outside a checkout (as a non-editable install is), with nothing configured: the checkout this test
    runs from has node_modules, and it must not be found by walking up from the package's files."""
    monkeypatch.chdir(tmp_path)
    r = fetch(Settings())
    assert r.status_code == 503
    detail = r.json()["detail"]
    assert "npm ci" in detail and "PULSE_NODE_MODULES_DIR" in detail and str(tmp_path.resolve()) in detail


def test_a_later_chdir_does_not_move_the_directory(tmp_path: Path, monkeypatch) -> None:
    fake_node_modules(tmp_path / "start", "start")
    monkeypatch.chdir(tmp_path / "start")
    app = FastAPI()
    app.include_router(vendor_router(Settings()))
    monkeypatch.chdir(tmp_path)
    assert get(app).text == "/* start */"
