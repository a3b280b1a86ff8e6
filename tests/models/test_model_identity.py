"""A user's model file is identified by its sha256, in provenance and in every call's cache key."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from codeduel.models import GenerateConfig, Message, bundled, load_model, parse_model_spec

MESSAGES = (Message("user", "Write a function"),)
CONFIG = GenerateConfig(max_tokens=8)


def test_a_replaced_model_file_changes_the_cache_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEDUEL_CACHE_DIR", str(tmp_path / "cache"))
    hashed: list[Path] = []
    real = bundled._sha256
    monkeypatch.setattr(bundled, "_sha256", lambda paths: (hashed.extend(paths), real(paths))[1])
    path = tmp_path / "mine.gguf"
    path.write_bytes(b"GGUF first weights")
    spec = parse_model_spec(f"llamacpp/{path}")

    first = load_model(spec, {}).provider
    assert first.identity() == {"model_sha256": hashlib.sha256(b"GGUF first weights").hexdigest()}
    key = load_model(spec, {}).request_hash(MESSAGES, CONFIG)
    assert load_model(spec, {}).request_hash(MESSAGES, CONFIG) == key
    assert hashed == [path.resolve()]  # hashed once: later loads read the recorded hash

    path.write_bytes(b"GGUF other weights, same name")
    os.utime(path, ns=(1, 1))
    assert load_model(spec, {}).request_hash(MESSAGES, CONFIG) != key  # no stale replay
    assert len(hashed) == 2


def test_a_bundled_model_keeps_its_name_as_its_identity() -> None:
    # Its weights are fixed by the name (sha256-checked when assembled): stored calls match.
    provider = load_model(parse_model_spec("llamacpp/smollm2-135m-instruct"), {}).provider
    assert provider.identity() == {}
    assert (
        bundled.model_sha256("smollm2-135m-instruct")
        == bundled.BUNDLED["smollm2-135m-instruct"].sha256
    )
