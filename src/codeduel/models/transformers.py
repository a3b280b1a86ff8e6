"""Provider `transformers`: a model's weights through Hugging Face transformers, run on a GPU by
codeduel's own continuous-batching engine (`_torch_engine`: static KV cache, CUDA graphs).

The model is a bundled name, a `.gguf` file (transformers dequantises it, so a bundled model
runs with the same weights as under `llamacpp`) or a Hugging Face model directory. Prompts
are rendered with the model's own chat template, like every local provider.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from codeduel.errors import ModelFileError, ModelUnusableError, OptionError
from codeduel.extract import AFTER_CODE, CLOSE_FENCE
from codeduel.models._local import LocalProvider
from codeduel.models._provider import ProviderOptions
from codeduel.models._stops import cut_at_stop
from codeduel.models.bundled import model_sha256, resolve_model_file
from codeduel.types import FinishReason, GenerateConfig, Message, ModelOutput

__all__ = ["TransformersOptions", "TransformersProvider"]


class TransformersOptions(ProviderOptions):
    device: str = Field(default="cuda", description="torch device: cuda, cuda:1, cpu")
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    # Sequences decoded together (continuous batching).
    parallel: int = Field(default=256, ge=1, le=1024)
    # Tokens per sequence (prompt and answer) the static KV cache holds.
    max_len: int = Field(default=2048, ge=64, le=32768)
    cuda_graphs: bool = True
    # On CUDA, torch.compile fuses each layer's elementwise pieces (norm, rotary, activation)
    # into one kernel each: 1.3x the single-stream speed of the 1.5B model, ~10 s more warm-up.
    compile: bool = True
    # Prompt-lookup speculation: draft tokens verified per step while at most
    # `speculate_max_batch` sequences, all greedy, are active (the run's tail); 0 is off.
    # Greedy answers are the same tokens either way.
    speculate: int = Field(default=0, ge=0, le=16)
    speculate_max_batch: int = Field(default=4, ge=1, le=1024)
    # Decode and verify attention: one fused Triton kernel per layer (`_torch_attention`), or
    # torch's five kernels. `auto`: Triton on CUDA where it is installed (on an H200: 1.26x
    # the single-stream speed of the 0.5B model, 1.19x the 1.5B's; docs/performance.md),
    # torch elsewhere (on the CPU Triton only interprets).
    attention: Literal["auto", "torch", "triton"] = "auto"


def _attention(choice: str, device: Any) -> str:
    """The decode attention for `choice` on `device` (see `TransformersOptions.attention`)."""
    if choice != "auto":
        return choice
    if device.type != "cuda":
        return "torch"
    try:
        import triton  # noqa: F401
    except ImportError:
        return "torch"
    return "triton"


class TransformersProvider(LocalProvider):
    name = "transformers"
    Options = TransformersOptions

    def __init__(self, model: str, options: ProviderOptions) -> None:
        assert isinstance(options, TransformersOptions)
        super().__init__(model, options, parallel=options.parallel)
        self.opts: TransformersOptions = options
        self._engine: Any = None
        self._tokenizer: Any = None
        self._vocab: _Vocab | None = None
        self._filters: dict[tuple[str, ...], _StopFilter] = {}
        self._stops: tuple[str, ...] = ()
        self.timings: dict[str, float] = {}

    # -- loading -----------------------------------------------------------------------------

    def load(self) -> Any:
        """Load weights and tokenizer, build the engine and capture its graphs (once)."""
        with self._lock:
            if self._engine is None:
                self._engine = self._build()
            return self._engine

    def _build(self) -> Any:
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise OptionError(
                f"provider 'transformers' needs a package that is missing ({exc.name}): "
                "pip install 'codeduel[gpu]'"
            ) from None

        from codeduel.models._torch_engine import TorchEngine
        from codeduel.models._torch_weights import from_hf

        device = torch.device(self.opts.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise OptionError(
                "transformers: no CUDA GPU is visible to torch; use -M device=cpu to run on "
                "the CPU (slowly) or the llamacpp provider"
            )
        dtype = getattr(torch, self.opts.dtype)
        start = time.perf_counter()
        source, kwargs = self._source()
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
            model = transformers.AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
        except (OSError, ValueError) as exc:
            reason = " ".join(str(exc).split())  # transformers' messages run over lines
            raise ModelFileError(f"transformers could not load {self.model}: {reason}") from None
        loaded = time.perf_counter()
        try:
            weights = from_hf(model, device, dtype)
        except ModelUnusableError as exc:
            raise ModelUnusableError(f"transformers/{self.model}: {exc}") from None
        del model
        self._use_chat(
            getattr(tokenizer, "chat_template", None),
            bos=tokenizer.bos_token or "",
            eos=tokenizer.eos_token or "",
        )
        stop_ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
        vocab = tokenizer.get_vocab()
        self._use_fim(lambda marker: marker in vocab)
        # End-of-turn markers that are tokens stop by id; only the others need matching as text.
        # A FIM format's end-of-middle tokens stop by id too: a chat answer never writes them.
        text_stops = []
        for marker in self._family.end_of_turn:
            if marker in vocab:
                stop_ids.add(vocab[marker])
            else:
                text_stops.append(marker)
        if self._fim is not None:
            stop_ids.update(vocab[m] for m in self._fim.stops if m in vocab)
        self._tokenizer = tokenizer
        self._stops = tuple(text_stops)
        self._vocab = _Vocab.of(tokenizer)
        self._filter_for((CLOSE_FENCE, *AFTER_CODE, *self._stops))
        engine = TorchEngine(
            weights,
            slots=self.opts.parallel,
            max_len=self.opts.max_len,
            stop_ids=sorted(stop_ids),
            cuda_graphs=self.opts.cuda_graphs,
            compile=self.opts.compile,
            speculate=self.opts.speculate,
            speculate_max_batch=self.opts.speculate_max_batch,
            attention=_attention(self.opts.attention, device),
        )
        moved = time.perf_counter()
        capture_s = engine.forward.capture_all()
        self.timings = {
            "load_s": loaded - start,
            "to_device_s": moved - loaded,
            "capture_s": capture_s,
            "graphs": float(len(engine.forward.graphs) + len(engine.forward.verify_graphs)),
        }
        return engine

    def _source(self) -> tuple[str, dict[str, Any]]:
        path = Path(self.model).expanduser()
        if path.is_dir():
            self._path = path
            return str(path), {}
        self._path = resolve_model_file(self.model)
        return str(self._path.parent), {"gguf_file": self._path.name}

    # -- generation --------------------------------------------------------------------------

    async def generate(self, messages: Sequence[Message], config: GenerateConfig) -> ModelOutput:
        engine = self._engine or await asyncio.to_thread(self.load)
        prompt = self.render(messages, config)
        tokens = self._tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if len(tokens) + engine.headroom >= engine.max_len:
            # No room to answer: an empty answer cut by length, as llamacpp gives (scored).
            return ModelOutput("", "length", len(tokens), 0, 0.0, prompt_text=prompt)
        stops = tuple(config.stop) + self._stops
        stream = _Stream(self._tokenizer, stops, self._filter_for(stops))
        future = engine.submit(
            tokens,
            budget=config.max_tokens,
            sink=stream,
            temperature=config.temperature,
            top_p=config.top_p if config.temperature > 0 else 1.0,
        )
        done = await asyncio.wrap_future(future)
        ttft = done.first_token - done.started if done.first_token is not None else None
        return ModelOutput(
            text=stream.final_text(),
            finish_reason=stream.finish,
            prompt_tokens=len(tokens),
            completion_tokens=len(done.tokens),
            latency_s=done.ended - done.started,
            ttft_s=ttft,
            prompt_text=prompt,
            peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            peak_vram_bytes=self._vram_bytes(),
            busy_s=done.busy_s,
            extra={"parallel": self.opts.parallel},
        )

    def _filter_for(self, stops: Sequence[str]) -> _StopFilter:
        key = tuple(stops)
        if key not in self._filters:
            assert self._vocab is not None
            lasts = frozenset(s[-1] for s in stops if s)
            self._filters[key] = _StopFilter(
                self._vocab,
                self._vocab.candidates(lasts),
                newline_led=all(s.startswith("\n") for s in stops),
                longest=max((len(s) for s in stops), default=0),
            )
        return self._filters[key]

    def _vram_bytes(self) -> int | None:
        import torch

        if not self.opts.device.startswith("cuda"):
            return None
        return int(torch.cuda.max_memory_reserved(torch.device(self.opts.device)))

    def info(self) -> dict[str, Any]:
        import torch
        import transformers

        engine = self.load()
        device = torch.device(self.opts.device)
        return {
            "engine": "codeduel torch engine over transformers weights",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "model_file": str(self._path),
            "model_sha256": model_sha256(self.model, self._path),
            "family": self._family.name,
            "weights_bytes": engine.forward.w.nbytes(),
            "cuda_graphs": engine.forward.graphs_enabled,
            "compiled": engine.forward.compiled,
            "warmup": self.timings,
            "options": self.opts.model_dump(),
        }

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.close()
                self._engine = None


_NEWLINES = ("\n", "Ċ", "<0x0A>")  # a newline as text, in byte-level BPE, in SentencePiece


@dataclass(frozen=True)
class _Vocab:
    """Per token id, what the stop check needs without decoding: the pieces' lengths in bytes
    and the bytes after each piece's last newline (-1: none)."""

    lengths: list[int]
    after_newline: list[int]
    pieces: list[str | None]
    special: frozenset[int]

    @classmethod
    def of(cls, tokenizer: Any) -> _Vocab:
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        lengths, after = [], []
        for piece in pieces:
            text = piece or ""
            byte = len(text) == 6 and text.startswith("<0x") and text.endswith(">")
            lengths.append(1 if byte else len(text))
            ends = [text.rfind(n) + len(n) for n in _NEWLINES if n in text]
            after.append(len(text) - max(ends) if ends else -1)
        return cls(lengths, after, pieces, frozenset(tokenizer.all_special_ids))

    def candidates(self, lasts: frozenset[str]) -> list[bool]:
        """May the token complete a stop? Only if it holds a stop's last character: printable
        ASCII is spelled as itself in byte-level BPE and SentencePiece vocabularies alike; for
        any other last character every token may."""
        if any(not (c.isascii() and c.isprintable() and c != " ") for c in lasts):
            return [True] * len(self.pieces)
        return [
            i in self.special or piece is None or any(c in piece for c in lasts)
            for i, piece in enumerate(self.pieces)
        ]


@dataclass(frozen=True)
class _StopFilter:
    vocab: _Vocab
    candidates: list[bool]
    # Every stop starts with a newline: a stop can then only end in a token that starts
    # within `longest` bytes after the last newline, which rules out most tokens of a line.
    newline_led: bool
    longest: int


class _Stream:
    """Tokens to text, cut at the first stop string; the engine ends the sequence on True.

    Decoding is the costly part, so a token is looked at only when a stop could have just
    completed in it (`_StopFilter`), and then only the last few tokens are decoded.
    """

    def __init__(self, tokenizer: Any, stops: tuple[str, ...], check: _StopFilter) -> None:
        self.tokenizer = tokenizer
        self.stops = stops
        self.check = check
        self.tokens: list[int] = []
        self.finish: FinishReason = "length"
        # Every token is at least one character, so this many tokens cover any stop string.
        self.window = check.longest + 1
        # Bytes since the last newline; the answer starts on a new line (after the fence).
        self.since_newline = 0
        self._text: str | None = None

    def push(self, token: int) -> bool:
        self.tokens.append(token)
        check = self.check
        if token >= len(check.candidates):
            return False
        before = self.since_newline
        after = check.vocab.after_newline[token]
        self.since_newline = after if after >= 0 else before + check.vocab.lengths[token]
        if check.newline_led and after < 0 and before >= check.longest:
            return False
        if not check.candidates[token]:
            return False
        tail = self.tokenizer.decode(self.tokens[-self.window :], skip_special_tokens=False)
        if not any(s in tail for s in self.stops):
            return False
        text = self.tokenizer.decode(self.tokens, skip_special_tokens=False)
        self._text = text[: cut_at_stop(text, self.stops, len(text))]
        self.finish = "stop"
        return True

    def end_of_turn(self) -> None:
        self.finish = "stop"

    def final_text(self) -> str:
        if self._text is None:
            self._text = self.tokenizer.decode(self.tokens, skip_special_tokens=False)
        return self._text
