"""A provider module with a bug (an import of a name codeduel does not have), for
tests/models/test_registry.py: the error must surface as what it is, not as a missing package."""

from __future__ import annotations

from codeduel.models import NoSuchProvider  # type: ignore[attr-defined]  # noqa: F401
