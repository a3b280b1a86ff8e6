"""A provider module whose SDK is not installed, for tests/models/test_registry.py."""

from __future__ import annotations

import nonexistent_sdk_for_codeduel_tests  # type: ignore[import-not-found]  # noqa: F401
