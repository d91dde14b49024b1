"""`/vendor/{name}`: the pages' third-party front-end files (the Socket.IO client, lightweight-charts, Swagger UI,
ReDoc), from `npm ci`'s node_modules.

Where node_modules is: `PULSE_NODE_MODULES_DIR` when set, else `./node_modules` of the working directory (`make run`
starts from the checkout, where `npm ci` put it). Never a path derived from this source file's location: in a
non-editable install the package lives in site-packages, far from any checkout, and guessing a parent directory
there would serve whatever happens to sit at that spot.
"""

from __future__ import annotations

from pathlib import Path

import structlog
from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

from marketpulse.settings import Settings

log = structlog.get_logger(__name__)

# Front-end files served from node_modules (installed by `npm ci`, never committed): URL name → path inside it.
VENDOR_FILES = {
    "socket.io.min.js": Path("socket.io-client/dist/socket.io.min.js"),
    "lightweight-charts.js": Path("lightweight-charts/dist/lightweight-charts.standalone.production.js"),
    "swagger-ui-bundle.js": Path("swagger-ui-dist/swagger-ui-bundle.js"),
    "swagger-ui.css": Path("swagger-ui-dist/swagger-ui.css"),
    "redoc.standalone.js": Path("redoc/bundles/redoc.standalone.js"),
}
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css"}
HINT = ("front-end libraries are not installed there: run `npm ci` in the repository root (or `make run`), and start "
        "from that directory or set PULSE_NODE_MODULES_DIR")


def node_modules_dir(settings: Settings) -> Path:
    """The configured directory, else ./node_modules (resolved now: a later chdir must not move it)."""
    return (settings.node_modules_dir or Path.cwd() / "node_modules").resolve()


def vendor_router(settings: Settings) -> APIRouter:
    root = node_modules_dir(settings)
    missing = sorted(name for name, rel in VENDOR_FILES.items() if not (root / rel).is_file())
    if missing:
        log.warning("front-end libraries missing", missing=missing, looked_in=str(root), hint=HINT)
    router = APIRouter(include_in_schema=False)

    @router.get("/vendor/{name}")
    async def vendor_file(name: str) -> FileResponse:
        if name not in VENDOR_FILES:  # only the listed files: nothing else under node_modules is reachable
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no vendored file {name}")
        if name in missing:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"{name}: not in {root}: {HINT}")
        return FileResponse(root / VENDOR_FILES[name], media_type=MEDIA_TYPES[Path(name).suffix],
                            headers={"Cache-Control": "public, max-age=3600"})

    return router
