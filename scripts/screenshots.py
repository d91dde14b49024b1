"""`make screenshots`: the README's pictures of the main pages, taken from a real `pulse demo`.

Starts `pulse demo` on a free port with a throw-away database and data directory (replayed market data at 60x,
the seeded admin), waits until the table and the first volume alerts are there, then drives Debian's Chromium
(Playwright) through the dashboard (desktop and 390 px), a symbol's chart, a backtest run, paper trading and the
API reference, and writes small palette PNGs into docs/screenshots/ (each well under 150 KB).

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--wait 120]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
MAX_BYTES = 150_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_demo(workdir: Path, port: int) -> tuple[subprocess.Popen[str], Path]:
    env = dict(os.environ, PULSE_DATABASE_URL=f"sqlite+aiosqlite:///{workdir / 'demo.db'}",
               PULSE_DATA_DIR=str(workdir), PULSE_NODE_MODULES_DIR=str(ROOT / "node_modules"),
               PULSE_RATE_LIMITS="off")
    log = workdir / "demo.log"
    pulse = Path(sys.executable).with_name("pulse")
    proc = subprocess.Popen([str(pulse), "demo", "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return proc, log


def admin_credentials(log: Path, deadline: float) -> tuple[str, str]:
    pattern = re.compile(r"demo admin: (\S+) / (\S+)")
    while time.monotonic() < deadline:
        hit = pattern.search(log.read_text())
        if hit:
            return hit.group(1), hit.group(2)
        time.sleep(0.5)
    raise SystemExit(f"error: the demo printed no admin credentials; see {log}")


def wait_for_market(url: str, deadline: float) -> None:
    """Until the table has rows and a few volume alerts are stored (the replay starts before the cascade)."""
    with httpx.Client(base_url=url, timeout=5) as http:
        while time.monotonic() < deadline:
            try:
                rows = http.get("/api/v1/market/data").json()
                alerts = http.get("/api/v1/volume-alerts/count").json()
                if len(rows.get("data", rows) if isinstance(rows, dict) else rows) > 20 and alerts["total"] >= 5:
                    return
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                pass
            time.sleep(1)
    print("warning: the market or its alerts were slow to arrive; taking the pictures anyway", file=sys.stderr)


def save(png: bytes, path: Path) -> None:
    """A palette PNG (screens are flat colours: 8 bits per pixel keep them sharp and small)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    for colors in (256, 128, 64):
        out = io.BytesIO()
        image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
        if out.tell() <= MAX_BYTES:
            break
    path.write_bytes(out.getvalue())
    print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {out.tell() / 1000:.0f} KB")


async def shoot(url: str, email: str, password: str, out: Path) -> None:
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport=DESKTOP)
        page = await context.new_page()
        resp = await page.request.post(url + "/api/v1/auth/signin", data={"email": email, "password": password})
        if not resp.ok:
            raise SystemExit(f"error: signing in as {email} failed: {resp.status}")

        async def snap(name: str, target: Any = None, full: bool = False) -> None:
            await (target or page).wait_for_timeout(800)  # the last live update settles
            save(await (target or page).screenshot(full_page=full), out / f"{name}.png")

        await page.goto(url + "/")
        await expect(page.locator("#market-body tr").nth(10)).to_be_attached(timeout=30_000)
        await snap("dashboard")

        await page.goto(url + "/market/BTCUSDT")
        await expect(page.locator("#chart")).to_have_attribute("data-state", "ready", timeout=30_000)
        await page.fill("#study-params", "20")
        await page.select_option("#study-kind", "ema")
        await page.click("#study-add")
        await expect(page.locator("#chart")).to_have_attribute("data-state", "ready", timeout=30_000)
        await snap("symbol")

        await page.goto(url + "/backtests")
        await page.click("#run")
        await expect(page.locator("#job")).to_have_attribute("data-status", "done", timeout=120_000)
        await page.set_viewport_size({"width": 1280, "height": 1100})
        await snap("backtests")
        await page.set_viewport_size(DESKTOP)

        await page.goto(url + "/paper")
        await expect(page.locator("#conn-status")).to_have_attribute("data-state", "live", timeout=30_000)
        await snap("paper")

        await page.goto(url + "/docs")
        await expect(page.locator("#swagger-ui .opblock").first).to_be_visible(timeout=30_000)
        await snap("docs")

        phone = await (await browser.new_context(viewport=PHONE, device_scale_factor=1)).new_page()
        await phone.goto(url + "/")
        await expect(phone.locator("#market-body tr").nth(5)).to_be_attached(timeout=30_000)
        await snap("dashboard-phone", phone)
        await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the demo's market and alerts")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit("error: Debian's chromium is missing: run make chromium (scripts/chromium.sh)")
    workdir = Path(tempfile.mkdtemp(prefix="mp-screens-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc, log = start_demo(workdir, port)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + args.wait
        email, password = admin_credentials(log, deadline)
        wait_for_market(url, deadline)
        asyncio.run(shoot(url, email, password, args.out.resolve()))
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # the demo's own process group: it stops its children too
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
