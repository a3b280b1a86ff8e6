"""A fused attention kernel for the torch engine's decode and verify steps (Triton): one kernel
per layer instead of five.

The plain layer spends five launches on attention: two KV-cache writes, the score matmul, the
softmax and the value matmul, over the whole context bucket. A step of a small batch is
launch-bound (docs/performance.md: 1.45 ms for 24 layers of 13 kernels, while the weights take
0.3 ms to read), so `step_attention` does it all in one. For each (sequence, KV head) it:

- rotates the `t` new tokens' query group and keys (rotary embedding, rotate-half layout);
- attends over the cached positions 0 … pos-1 and, causally, over the new tokens, with an
  online softmax in float32;
- writes the output, and stores the new keys and values at pos … pos+t-1.

A decode step has one new token per sequence; a verify step (prompt-lookup speculation) has
the pending token and the drafts. The kernel reads each sequence's true length from the
position buffer on the device. So it is captured in a CUDA graph once per batch bucket, and
still reads no cell past a sequence's end.

It is imported only when `attention="triton"` (triton comes with torch's CUDA builds). With
`TRITON_INTERPRET=1` the same kernel runs on the CPU, which is how the tests check it.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

__all__ = ["step_attention"]


@triton.jit  # type: ignore[misc, untyped-decorator, unused-ignore]
def _step_attention_kernel(  # type: ignore[no-untyped-def]
    QKV,
    K_CACHE,
    V_CACHE,
    POS,
    COS,
    SIN,
    OUT,
    stride_qkv,
    stride_cs,
    stride_ch,
    stride_cl,
    stride_trig,
    stride_out,
    max_pos,
    scale,
    HEADS: tl.constexpr,
    KV: tl.constexpr,
    GROUP: tl.constexpr,
    T: tl.constexpr,
    T_PAD: tl.constexpr,
    R_PAD: tl.constexpr,
    HALF: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0)
    kvh = tl.program_id(1)
    pos = tl.load(POS + row)
    hd = 2 * HALF
    dtype = QKV.dtype.element_ty
    d = tl.arange(0, HALF)

    # Query rows r = j × GROUP + g: token j's query head g of this KV head's group. Padding
    # rows act as token 0's first head and are never stored.
    r = tl.arange(0, R_PAD)
    live = r < T * GROUP
    j = tl.where(live, r // GROUP, 0)
    g = tl.where(live, r % GROUP, 0)
    q_pos = tl.minimum(pos + j, max_pos)
    q_at = QKV + (row * T + j)[:, None] * stride_qkv + ((kvh * GROUP + g) * hd)[:, None]
    q_at = q_at + d[None, :]
    q1 = tl.load(q_at).to(tl.float32)
    q2 = tl.load(q_at + HALF).to(tl.float32)
    cos = tl.load(COS + q_pos[:, None] * stride_trig + d[None, :]).to(tl.float32)
    sin = tl.load(SIN + q_pos[:, None] * stride_trig + d[None, :]).to(tl.float32)
    # Rotated as the plain path rounds it: in float32, then to the model's dtype.
    r1 = (q1 * cos - q2 * sin).to(dtype)
    r2 = (q2 * cos + q1 * sin).to(dtype)

    # The new tokens' keys (rotated) and values.
    tn = tl.arange(0, T_PAD)
    t_live = tn < T
    t_src = QKV + (row * T + tl.where(t_live, tn, 0))[:, None] * stride_qkv + d[None, :]
    k_at = t_src + (HEADS + kvh) * hd
    v_at = t_src + (HEADS + KV + kvh) * hd
    kn1 = tl.load(k_at).to(tl.float32)
    kn2 = tl.load(k_at + HALF).to(tl.float32)
    t_pos = tl.minimum(pos + tn, max_pos)
    cos_t = tl.load(COS + t_pos[:, None] * stride_trig + d[None, :]).to(tl.float32)
    sin_t = tl.load(SIN + t_pos[:, None] * stride_trig + d[None, :]).to(tl.float32)
    kr1 = (kn1 * cos_t - kn2 * sin_t).to(dtype)
    kr2 = (kn2 * cos_t + kn1 * sin_t).to(dtype)
    vn1 = tl.load(v_at)
    vn2 = tl.load(v_at + HALF)

    # The new tokens first, causally: each query sees itself, so the running max is finite
    # and masked cells never make NaN.
    s = (tl.dot(r1, tl.trans(kr1)) + tl.dot(r2, tl.trans(kr2))) * scale
    s = tl.where((tn[None, :] <= j[:, None]) & t_live[None, :], s, float("-inf"))
    m = tl.max(s, axis=1)
    p = tl.exp(s - m[:, None])
    total = tl.sum(p, axis=1)
    p = p.to(dtype)
    acc1 = tl.dot(p, vn1.to(dtype))
    acc2 = tl.dot(p, vn2.to(dtype))

    # Then the cached positions 0 … pos-1, which every new token sees.
    k_row = K_CACHE + row * stride_cs + kvh * stride_ch
    v_row = V_CACHE + row * stride_cs + kvh * stride_ch
    for start in range(0, pos, BLOCK):
        cells = start + tl.arange(0, BLOCK)
        seen = cells < pos
        at = cells[:, None] * stride_cl + d[None, :]
        kc1 = tl.load(k_row + at, mask=seen[:, None], other=0.0)
        kc2 = tl.load(k_row + at + HALF, mask=seen[:, None], other=0.0)
        sc = (tl.dot(r1, tl.trans(kc1)) + tl.dot(r2, tl.trans(kc2))) * scale
        sc = tl.where(seen[None, :], sc, float("-inf"))
        m_new = tl.maximum(m, tl.max(sc, axis=1))
        alpha = tl.exp(m - m_new)
        pc = tl.exp(sc - m_new[:, None])
        total = total * alpha + tl.sum(pc, axis=1)
        vc1 = tl.load(v_row + at, mask=seen[:, None], other=0.0)
        vc2 = tl.load(v_row + at + HALF, mask=seen[:, None], other=0.0)
        pc = pc.to(dtype)
        acc1 = acc1 * alpha[:, None] + tl.dot(pc, vc1)
        acc2 = acc2 * alpha[:, None] + tl.dot(pc, vc2)
        m = m_new

    out_at = OUT + (row * T + j)[:, None] * stride_out + ((kvh * GROUP + g) * hd)[:, None]
    out_at = out_at + d[None, :]
    tl.store(out_at, (acc1 / total[:, None]).to(dtype), mask=live[:, None])
    tl.store(out_at + HALF, (acc2 / total[:, None]).to(dtype), mask=live[:, None])
    # The new keys and values into the cache (no program reads those cells this step).
    cell = t_pos[:, None] * stride_cl + d[None, :]
    tl.store(k_row + cell, kr1, mask=t_live[:, None])
    tl.store(k_row + cell + HALF, kr2, mask=t_live[:, None])
    tl.store(v_row + cell, vn1, mask=t_live[:, None])
    tl.store(v_row + cell + HALF, vn2, mask=t_live[:, None])


def step_attention(
    qkv: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    pos: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    heads: int,
    kv_heads: int,
    head_dim: int,
) -> torch.Tensor:
    """Attention of `t` new tokens for each of rows 0 … n-1 of the KV cache.

    `qkv` is the fused projection, bias included, before rotation: [n × t, (heads + 2 kv) ×
    hd], each row's t tokens together. Row i's tokens sit at positions pos[i] … pos[i]+t-1
    (clamped to the cache), and attend over that row's cached cells before pos[i] and
    causally among themselves. Their keys and values are written into `k_cache`/`v_cache`
    ([slots, kv, max_len, hd]). `cos`/`sin` are the rotary tables ([max_len, hd]).
    Returns [n × t, heads × hd].
    """
    n = pos.shape[0]
    t = qkv.shape[0] // n
    group = heads // kv_heads
    out = torch.empty(n * t, heads * head_dim, device=qkv.device, dtype=qkv.dtype)
    _step_attention_kernel[(n, kv_heads)](
        qkv,
        k_cache,
        v_cache,
        pos,
        cos,
        sin,
        out,
        qkv.stride(0),
        k_cache.stride(0),
        k_cache.stride(1),
        k_cache.stride(2),
        cos.stride(0),
        out.stride(0),
        k_cache.shape[2] - 1,
        1.0 / math.sqrt(head_dim),
        HEADS=heads,
        KV=kv_heads,
        GROUP=group,
        T=t,
        # tl.dot needs 16 rows and columns at least; the padding is masked.
        T_PAD=max(16, triton.next_power_of_2(t)),
        R_PAD=max(16, triton.next_power_of_2(t * group)),
        HALF=head_dim // 2,
        BLOCK=64,
    )
    return out
