"""The torch engine's fused decode-attention kernel (`_torch_attention`, Triton) against torch's
own attention, in float32 on the CPU through Triton's interpreter (the same kernel is compiled
for the GPU there; bench/gpu_humaneval.py times it).

Needs torch and triton; skipped where they are missing.
"""

from __future__ import annotations

import math
import os

import pytest

# Before the kernel's module is imported: its kernel is then interpreted, on CPU tensors.
os.environ["TRITON_INTERPRET"] = "1"
torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from codeduel.models._torch_attention import step_attention  # noqa: E402
from codeduel.models._torch_forward import _rope  # noqa: E402


def tables(length: int, hd: int) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / (1e6 ** (torch.arange(0, hd, 2).float() / hd))
    freqs = torch.arange(length).float()[:, None] * inv[None]
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def plain(
    qkv: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    pos: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    heads: int,
    kv: int,
    hd: int,
) -> torch.Tensor:
    """Rotation, cache writes and attention written out in torch, one row at a time."""
    n = qkv.shape[0]
    qk = _rope(qkv, cos[pos][:, None, :], sin[pos][:, None, :], heads, kv, hd)
    rows = torch.arange(n)
    k_cache[rows, :, pos] = qk[:, heads:]
    v_cache[rows, :, pos] = qkv[:, (heads + kv) * hd :].view(n, kv, hd)
    out = []
    for r in range(n):
        q = qk[r, :heads].view(kv, heads // kv, hd)
        keys, values = k_cache[r, :, : pos[r] + 1], v_cache[r, :, : pos[r] + 1]
        att = torch.softmax(q @ keys.transpose(1, 2) / math.sqrt(hd), dim=-1) @ values
        out.append(att.reshape(heads * hd))
    return torch.stack(out)


@pytest.mark.parametrize(
    ("heads", "kv", "hd"),
    [(14, 2, 64), (12, 2, 128), (9, 3, 64)],  # Qwen2.5-Coder 0.5B, 1.5B; SmolLM2-135M
)
def test_the_kernel_equals_torchs_attention_and_writes_the_new_key_and_value(
    heads: int, kv: int, hd: int
) -> None:
    torch.manual_seed(heads)
    # Positions at the start, inside the first block, on and past block edges (64 cells).
    pos = torch.tensor([0, 5, 63, 64, 130])
    n, slots, length = len(pos), 6, 200
    qkv = torch.randn(n, (heads + 2 * kv) * hd)
    k_cache, v_cache = torch.randn(slots, kv, length, hd), torch.randn(slots, kv, length, hd)
    cos, sin = tables(length, hd)
    k_ref, v_ref = k_cache.clone(), v_cache.clone()
    expected = plain(qkv, k_ref, v_ref, pos, cos, sin, heads, kv, hd)

    got = step_attention(qkv, k_cache, v_cache, pos, cos, sin, heads, kv, hd)

    assert got.shape == (n, heads * hd)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # The new cells are written and nothing else moved: the cache equals the plain path's.
    torch.testing.assert_close(k_cache, k_ref, rtol=1e-6, atol=1e-6)
    assert torch.equal(v_cache, v_ref)


@pytest.mark.parametrize(("heads", "kv", "hd", "t"), [(14, 2, 64, 5), (12, 2, 128, 9)])
def test_a_verify_steps_tokens_attend_to_the_cache_and_causally_to_each_other(
    heads: int, kv: int, hd: int, t: int
) -> None:
    torch.manual_seed(t)
    pos = torch.tensor([0, 40, 64])
    n, slots, length = len(pos), 4, 160
    qkv = torch.randn(n * t, (heads + 2 * kv) * hd)
    k_cache, v_cache = torch.randn(slots, kv, length, hd), torch.randn(slots, kv, length, hd)
    cos, sin = tables(length, hd)
    # The reference: every new token's key and value into the cache first, then token j of
    # a row sees that row's cells up to its own position pos + j.
    at = pos[:, None] + torch.arange(t)
    flat = at.reshape(-1)
    qk = _rope(qkv, cos[flat][:, None, :], sin[flat][:, None, :], heads, kv, hd)
    k_ref, v_ref = k_cache.clone(), v_cache.clone()
    rows = torch.arange(n)[:, None].expand(n, t).reshape(-1)
    k_ref[rows, :, flat] = qk[:, heads:]
    v_ref[rows, :, flat] = qkv[:, (heads + kv) * hd :].view(n * t, kv, hd)
    expected = []
    for i, p in enumerate(flat.tolist()):
        r = int(rows[i])
        q = qk[i, :heads].view(kv, heads // kv, hd)
        keys, values = k_ref[r, :, : p + 1], v_ref[r, :, : p + 1]
        att = torch.softmax(q @ keys.transpose(1, 2) / math.sqrt(hd), dim=-1) @ values
        expected.append(att.reshape(heads * hd))

    got = step_attention(qkv, k_cache, v_cache, pos, cos, sin, heads, kv, hd)

    torch.testing.assert_close(got, torch.stack(expected), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(k_cache, k_ref, rtol=1e-6, atol=1e-6)
    assert torch.equal(v_cache, v_ref)


def test_cells_past_a_rows_position_are_never_read() -> None:
    heads, kv, hd = 14, 2, 64
    pos = torch.tensor([3, 70])
    qkv = torch.randn(2, (heads + 2 * kv) * hd)
    k_cache, v_cache = torch.randn(2, kv, 128, hd), torch.randn(2, kv, 128, hd)
    cos, sin = tables(128, hd)
    first = step_attention(qkv, k_cache.clone(), v_cache.clone(), pos, cos, sin, heads, kv, hd)
    # Garbage (even NaN) beyond each row's position: a longer context bucket's stale cells.
    for row, p in enumerate(pos.tolist()):
        k_cache[row, :, p + 1 :] = float("nan")
        v_cache[row, :, p + 1 :] = float("nan")
    again = step_attention(qkv, k_cache, v_cache, pos, cos, sin, heads, kv, hd)
    assert torch.equal(first, again)


@pytest.mark.slow
def test_an_engine_with_the_kernel_decodes_the_plain_engines_greedy_tokens() -> None:
    # "numbers = [3, 1, 2]" repeats its own n-grams: prompt lookup finds drafts there.
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from codeduel.models._torch_engine import TorchEngine
    from codeduel.models._torch_weights import from_hf
    from codeduel.models.bundled import resolve_model_file

    path = resolve_model_file("smollm2-135m-instruct")
    kwargs = {"gguf_file": path.name}
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent), **kwargs)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), dtype=torch.float32, **kwargs
    )
    texts = ["def fibonacci(n):\n    ", "The capital of France is", "numbers = [3, 1, 2]\n"]
    prompts = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    budgets = [12, 7, 10]
    weights = from_hf(model, torch.device("cpu"), torch.float32)
    got = {}
    # The plain engine, the kernel in decode steps, and in verify steps too (speculation).
    for attention, k in (("torch", 0), ("triton", 0), ("triton-speculate", 4)):
        # 2 slots for 3 requests: a slot is freed and refilled, and rows move.
        engine = TorchEngine(
            weights,
            slots=2,
            max_len=96,
            stop_ids=[],
            attention=attention.partition("-")[0],
            speculate=k,
            speculate_max_batch=2,
        )
        try:
            futures = [
                engine.submit(ids, budget=n, sink=_Count())
                for ids, n in zip(prompts, budgets, strict=True)
            ]
            got[attention] = [f.result(timeout=300).tokens for f in futures]
        finally:
            engine.close()
    assert [len(t) for t in got["torch"]] == budgets
    assert got["triton"] == got["torch"]
    assert got["triton-speculate"] == got["torch"]
    assert engine.drafted > 0  # verify steps ran


class _Count:
    def push(self, token: int) -> bool:
        return False

    def end_of_turn(self) -> None:
        pass


def test_auto_picks_the_kernel_on_cuda_only_where_triton_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from codeduel.models.transformers import TransformersOptions, _attention

    assert TransformersOptions().attention == "auto"
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert _attention("auto", cuda) == "triton"
    assert _attention("auto", cpu) == "torch"  # Triton would only interpret there
    assert _attention("torch", cuda) == "torch"
    assert _attention("triton", cpu) == "triton"  # asked for: the interpreter's tests
    monkeypatch.setitem(sys.modules, "triton", None)  # not installed
    assert _attention("auto", cuda) == "torch"
