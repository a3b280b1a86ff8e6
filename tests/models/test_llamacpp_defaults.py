"""The llamacpp provider's defaults: batched decoding sized for the machine, all layers on a GPU."""

from __future__ import annotations

import pytest

from codeduel.models import llamacpp, load_model, parse_model_spec
from codeduel.models.llamacpp import AUTO_SLOTS_CPU, AUTO_SLOTS_GPU, auto_parallel

SPEC = parse_model_spec("llamacpp/qwen2.5-coder-0.5b-instruct")
GIB = 1 << 30


def test_auto_parallel_is_the_measured_batch_unless_memory_is_short() -> None:
    assert auto_parallel(gpu=False, kv_bytes_per_slot=50 << 20, available_bytes=20 * GIB) == 32
    assert AUTO_SLOTS_CPU == 32
    # A model whose 4,096-token KV cache takes 512 MiB a slot, on a machine with 8 GiB free.
    assert auto_parallel(gpu=False, kv_bytes_per_slot=512 << 20, available_bytes=8 * GIB) == 4
    assert auto_parallel(gpu=False, kv_bytes_per_slot=4 * GIB, available_bytes=2 * GIB) == 1
    # On a GPU, half the free VRAM: a 0.5B model's 50 MiB slots on an 8 GiB card hold 81, on
    # an H200 llama.cpp's most; a slot larger than half the card leaves one.
    assert auto_parallel(gpu=True, kv_bytes_per_slot=50 << 20, available_bytes=8 * GIB) == 81
    assert auto_parallel(gpu=True, kv_bytes_per_slot=50 << 20, available_bytes=130 * GIB) == (
        AUTO_SLOTS_GPU
    )
    assert AUTO_SLOTS_GPU == 256
    assert auto_parallel(gpu=True, kv_bytes_per_slot=512 << 20, available_bytes=GIB) == 1
    assert auto_parallel(gpu=True, kv_bytes_per_slot=None, available_bytes=None) == 256


def test_defaults_before_load(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing is loaded here: the provider settles what it can from the build.
    provider = load_model(SPEC, {}).provider
    assert isinstance(provider, llamacpp.LlamaCppProvider)
    assert provider.gpu_layers == (-1 if llamacpp.gpu_build() else 0)
    assert provider.capabilities.max_concurrency == provider.parallel > 1
    assert load_model(SPEC, {"parallel": "1"}).provider.capabilities.max_concurrency == 1
    monkeypatch.setattr(llamacpp, "gpu_build", lambda: True)
    on_gpu = load_model(SPEC, {}).provider
    assert isinstance(on_gpu, llamacpp.LlamaCppProvider)
    assert on_gpu.gpu_layers == -1 and on_gpu.parallel == AUTO_SLOTS_GPU
    assert load_model(SPEC, {"n_gpu_layers": "0"}).provider.parallel == AUTO_SLOTS_CPU
