"""Tax under test: the accounts fixtures (real SMTP sink, sign-up and sign-in helpers) plus this router."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from accounts.conftest import client, settings, sink, smtp  # noqa: F401, I001 (fixtures; tests/accounts)
from marketpulse.accounts import views
from marketpulse.api.errors import install_error_handlers
from marketpulse.runtime import Runtime
from marketpulse.tax import views as tax_views


@pytest.fixture
def app(runtime: Runtime) -> FastAPI:
    application = FastAPI()
    application.state.runtime = runtime
    install_error_handlers(application)
    for module in (views, tax_views):
        application.include_router(module.router)
    return application
