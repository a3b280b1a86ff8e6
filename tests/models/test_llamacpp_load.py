"""A model file llama.cpp refuses is one line that says why, not the binding's bare failure."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest

from codeduel.errors import ModelFileError, ModelUnusableError
from codeduel.models import GenerateConfig, Message, load_model, parse_model_spec
from codeduel.models.bundled import resolve_model_file

GGUF_STRING = 8


def _gguf(path: Path, architecture: str) -> Path:
    """A GGUF v3 file holding only `general.architecture`, no tensors."""

    def text(value: str) -> bytes:
        data = value.encode()
        return struct.pack("<Q", len(data)) + data

    pair = text("general.architecture") + struct.pack("<I", GGUF_STRING) + text(architecture)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + pair)
    return path


def test_an_unknown_architecture_is_unusable(tmp_path: Path) -> None:
    path = _gguf(tmp_path / "frob.gguf", "frobnicator")
    model = load_model(parse_model_spec(f"llamacpp/{path}"), {})
    prompt = (Message("user", "hi"),)
    with pytest.raises(ModelUnusableError) as caught:
        asyncio.run(model.generate(prompt, GenerateConfig(max_tokens=2)))
    message = str(caught.value)
    assert f"cannot run {path}: unknown model architecture: 'frobnicator'" in message
    assert "\n" not in message


def test_a_truncated_file_says_what_llama_cpp_found(tmp_path: Path) -> None:
    path = tmp_path / "cut.gguf"
    with resolve_model_file("smollm2-135m-instruct").open("rb") as whole:
        path.write_bytes(whole.read(4096))
    provider = load_model(parse_model_spec(f"llamacpp/{path}"), {}).provider
    with pytest.raises(ModelFileError, match=rf"could not load {path}: failed to read") as caught:
        provider.info()
    assert not isinstance(caught.value, ModelUnusableError)
