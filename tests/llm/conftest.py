"""Fixtures for the provider adapter tests: a real local HTTP server playing provider responses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.fakes.provider_server import FakeProviderServer


@pytest.fixture
def provider_server() -> Iterator[FakeProviderServer]:
    server = FakeProviderServer().start()
    try:
        yield server
    finally:
        server.close()
