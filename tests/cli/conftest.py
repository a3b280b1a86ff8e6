"""Fixtures for the CLI tests: `stub_provider` is shared, in tests/conftest.py."""
