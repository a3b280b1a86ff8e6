"""Shared fixtures: every test gets its own cache, data and store directories."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# The project's shared data, beside the checkout (../shared); tests reach it only through
# the fixtures below, which says what is missing.
SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def mbpp_dir() -> Path:
    """../shared/datasets/mbpp, where the MBPP tests read the sanitized dataset."""
    return _shared("datasets/mbpp/sanitized-mbpp.json").parent


def _shared(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.fail(
            f"{path} is missing: these tests read the project's shared data from ../shared "
            "beside the checkout (as CI has it)",
            pytrace=False,
        )
    return path


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point codeduel's cache and store at a temp dir, keeping the assembled model cache."""
    monkeypatch.setenv("CODEDUEL_DB", str(tmp_path / "codeduel.db"))
    return tmp_path


@pytest.fixture
def stub_provider() -> Iterator[str]:
    """Registers provider `stub` (tests/cli/stub_provider.py); returns a model spec for it."""
    from codeduel.models import register_provider, unregister_provider

    register_provider("stub", "tests.cli.stub_provider:StubProvider")
    yield "stub/x"
    unregister_provider("stub")
