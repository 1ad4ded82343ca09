"""Webhook tests run with private targets allowed (loopback receivers), a compressed retry
schedule and made-up DNS names."""

from __future__ import annotations

from typing import Any

import pytest

from tests.webhooks.support import FAST, FakeDns
from wacrm.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update=FAST)


@pytest.fixture
def dns() -> FakeDns:
    return FakeDns()


@pytest.fixture
def app(app: Any, dns: FakeDns) -> Any:
    app.state.webhook_resolver = dns
    return app
