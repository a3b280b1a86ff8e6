"""The weights of a Llama-family decoder (Llama, Qwen2) for the torch engine: their shape, and
their layout, fused (one QKV and one gate/up matrix a layer) and contiguous on the device.

`from_hf` takes them from a loaded `transformers` model (which reads GGUF files too);
`dummy_weights` makes same-shape random ones for speed measurements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from codeduel.errors import ModelUnusableError

__all__ = ["SHAPES", "Layer", "Shape", "Weights", "dummy_weights", "from_hf"]


@dataclass(frozen=True)
class Shape:
    """The numbers a Llama-family decoder is made of."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    rms_eps: float
    rope_theta: float
    qkv_bias: bool

    def params(self) -> int:
        attn = self.hidden * (self.heads + 2 * self.kv_heads) * self.head_dim
        attn += self.heads * self.head_dim * self.hidden
        mlp = 3 * self.hidden * self.intermediate
        return self.layers * (attn + mlp + 2 * self.hidden) + self.vocab * self.hidden


# Public configurations of the bundled models, for same-shape random weights.
SHAPES: dict[str, Shape] = {
    "qwen2.5-coder-0.5b-instruct": Shape(24, 896, 14, 2, 64, 4864, 151936, 1e-6, 1e6, True),
    "qwen2.5-coder-1.5b-instruct": Shape(28, 1536, 12, 2, 128, 8960, 151936, 1e-6, 1e6, True),
}


@dataclass
class Layer:
    norm1: torch.Tensor
    qkv: torch.Tensor
    qkv_bias: torch.Tensor | None
    o: torch.Tensor
    norm2: torch.Tensor
    gate_up: torch.Tensor
    down: torch.Tensor


@dataclass
class Weights:
    shape: Shape
    embed: torch.Tensor
    layers: list[Layer]
    norm: torch.Tensor
    lm_head: torch.Tensor

    def nbytes(self) -> int:
        tensors = [self.embed, self.norm]
        if self.lm_head.data_ptr() != self.embed.data_ptr():
            tensors.append(self.lm_head)
        for layer in self.layers:
            tensors += [layer.norm1, layer.qkv, layer.o, layer.norm2, layer.gate_up, layer.down]
            if layer.qkv_bias is not None:
                tensors.append(layer.qkv_bias)
        return sum(t.numel() * t.element_size() for t in tensors)


def from_hf(model: Any, device: torch.device, dtype: torch.dtype) -> Weights:
    """Take the weights of a loaded `transformers` Llama-family model, fused, onto `device`;
    a model the engine cannot run is `ModelUnusableError`."""
    config = model.config
    kind = getattr(config, "model_type", "")
    if kind not in ("llama", "qwen2", "mistral"):
        raise _unusable(f"Llama-family models (llama, qwen2, mistral) only, not {kind!r}")
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ("default", None):
        raise _unusable(f"no rope scaling {rope_type!r}")
    theta = rope.get("rope_theta") or getattr(config, "rope_theta", 10000.0)
    window = getattr(config, "sliding_window", None)
    if getattr(config, "use_sliding_window", kind == "mistral" and window is not None):
        raise _unusable("no sliding-window attention")
    first = model.model.layers[0]
    biased = [first.self_attn.o_proj, first.mlp.gate_proj, first.mlp.up_proj, first.mlp.down_proj]
    if any(linear.bias is not None for linear in biased):
        raise _unusable("no output or MLP biases")
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    shape = Shape(
        layers=config.num_hidden_layers,
        hidden=config.hidden_size,
        heads=heads,
        kv_heads=config.num_key_value_heads,
        head_dim=head_dim,
        intermediate=config.intermediate_size,
        vocab=config.vocab_size,
        rms_eps=config.rms_norm_eps,
        rope_theta=float(theta or 10000.0),
        qkv_bias=model.model.layers[0].self_attn.q_proj.bias is not None,
    )

    def put(t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(device=device, dtype=dtype).contiguous()

    layers = []
    for block in model.model.layers:
        att, mlp = block.self_attn, block.mlp
        bias = None
        if att.q_proj.bias is not None:
            bias = put(torch.cat([att.q_proj.bias, att.k_proj.bias, att.v_proj.bias]))
        layers.append(
            Layer(
                norm1=put(block.input_layernorm.weight),
                qkv=put(torch.cat([att.q_proj.weight, att.k_proj.weight, att.v_proj.weight])),
                qkv_bias=bias,
                o=put(att.o_proj.weight),
                norm2=put(block.post_attention_layernorm.weight),
                gate_up=put(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])),
                down=put(mlp.down_proj.weight),
            )
        )
    embed = put(model.model.embed_tokens.weight)
    head = model.get_output_embeddings().weight
    tied = head.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return Weights(shape, embed, layers, put(model.model.norm.weight), embed if tied else put(head))


def _unusable(what: str) -> ModelUnusableError:
    return ModelUnusableError(
        f"the transformers engine runs {what}: run a GGUF file of this model with the llamacpp "
        "provider"
    )


def dummy_weights(shape: Shape, device: torch.device, dtype: torch.dtype, seed: int = 0) -> Weights:
    """Random weights of `shape` (like vLLM's `--load-format dummy`): speed, not answers."""
    gen = torch.Generator(device=device).manual_seed(seed)

    def rand(*size: int) -> torch.Tensor:
        return (torch.randn(*size, generator=gen, device=device, dtype=torch.float32) * 0.02).to(
            dtype
        )

    def ones(n: int) -> torch.Tensor:
        return torch.ones(n, device=device, dtype=dtype)

    qkv_out = (shape.heads + 2 * shape.kv_heads) * shape.head_dim
    layers = [
        Layer(
            norm1=ones(shape.hidden),
            qkv=rand(qkv_out, shape.hidden),
            qkv_bias=rand(qkv_out) if shape.qkv_bias else None,
            o=rand(shape.hidden, shape.heads * shape.head_dim),
            norm2=ones(shape.hidden),
            gate_up=rand(2 * shape.intermediate, shape.hidden),
            down=rand(shape.hidden, shape.intermediate),
        )
        for _ in range(shape.layers)
    ]
    embed = rand(shape.vocab, shape.hidden)
    return Weights(shape, embed, layers, ones(shape.hidden), embed)
