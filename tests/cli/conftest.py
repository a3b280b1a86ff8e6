"""Fixtures for the CLI tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def stub_provider() -> Iterator[str]:
    """Registers provider `stub` (see stub_provider.py); returns a model spec for it."""
    from codeduel.models import register_provider, unregister_provider

    register_provider("stub", "tests.cli.stub_provider:StubProvider")
    yield "stub/x"
    unregister_provider("stub")
