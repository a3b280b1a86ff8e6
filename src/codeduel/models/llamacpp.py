"""Provider `llamacpp`: GGUF models in-process through llama-cpp-python."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import os
import re
import resource
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import llama_cpp
from pydantic import Field

from codeduel.errors import ModelFileError, ModelUnusableError, UserError
from codeduel.models._chat import render_chat
from codeduel.models._llama_batch import BatchEngine, TokenSink
from codeduel.models._local import LocalProvider
from codeduel.models._provider import ProviderOptions
from codeduel.models._stops import cut_at_stop
from codeduel.models.bundled import model_sha256, resolve_model_file
from codeduel.types import FinishReason, GenerateConfig, Message, ModelOutput

__all__ = ["LlamaCppOptions", "LlamaCppProvider", "render_chat"]


# Sequences decoded together by default, measured (docs/performance.md, batched decode): on
# 2 cores 32 sequences decode 3.18x the tokens per second of one (16: 3.01x). On a GPU a step's
# cost barely grows with the batch, so as many as the free VRAM holds, up to llama.cpp's most.
AUTO_SLOTS_CPU = 32
AUTO_SLOTS_GPU = 256
# The KV cache of all slots may take at most this share of the memory available at load
# (host memory on the CPU, the GPU's free memory once the weights are on it).
AUTO_KV_SHARE = 0.25
AUTO_KV_SHARE_GPU = 0.5
# llama.cpp's log callback, which says why a load failed, is one for the process.
_LOAD_LOG_LOCK = threading.Lock()


class LlamaCppOptions(ProviderOptions):
    n_threads: int | None = None
    # Layers offloaded to the GPU; by default all of them (-1) on a GPU build, else none.
    n_gpu_layers: int | None = None
    # Context per sequence (per slot when batching).
    n_ctx: int = 4096
    n_batch: int = 512
    # Flash attention; by default on where layers run on a GPU (llama.cpp's `auto`), else off.
    flash_attn: bool | None = None
    # Greedy sampling inside llama.cpp's graph (`_llama_batch`); by default on a GPU only.
    backend_sampling: bool | None = None
    # One KV cache for all slots instead of a stream per slot (llama.cpp's `kv_unified`).
    kv_unified: bool = False
    use_mmap: bool = True
    verbose: bool = False
    # Sequences decoded together (continuous batching); 1 decodes one call at a time; `auto`
    # picks from the backend and the memory the KV cache may take (`auto_parallel`).
    parallel: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = "auto"


def gpu_build() -> bool:
    """Whether this llama.cpp build can offload layers to a GPU (CUDA, Metal, Vulkan...)."""
    return bool(llama_cpp.llama_supports_gpu_offload())


def auto_parallel(gpu: bool, kv_bytes_per_slot: int | None, available_bytes: int | None) -> int:
    """Slots for `parallel=auto`: the backend's most, fewer where the KV cache of that many
    would take more than its share of the available memory (host memory, or free VRAM)."""
    slots = AUTO_SLOTS_GPU if gpu else AUTO_SLOTS_CPU
    if kv_bytes_per_slot and available_bytes:
        share = AUTO_KV_SHARE_GPU if gpu else AUTO_KV_SHARE
        slots = min(slots, int(available_bytes * share // kv_bytes_per_slot))
    return max(1, slots)


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _free_vram() -> int | None:
    """The free memory of the GPUs in ggml's device registry (None without one): llama.cpp's
    own view, whatever the backend (CUDA, Metal, Vulkan), and without NVML."""
    from llama_cpp._ggml import libggml as lib

    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
    lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_type.restype = ctypes.c_int
    size_p = ctypes.POINTER(ctypes.c_size_t)
    lib.ggml_backend_dev_memory.argtypes = [ctypes.c_void_p, size_p, size_p]
    lib.ggml_backend_dev_memory.restype = None
    free = 0
    for i in range(lib.ggml_backend_dev_count()):
        device = lib.ggml_backend_dev_get(i)
        if lib.ggml_backend_dev_type(device) != _GGML_DEVICE_GPU:
            continue
        device_free, total = ctypes.c_size_t(), ctypes.c_size_t()
        lib.ggml_backend_dev_memory(device, ctypes.byref(device_free), ctypes.byref(total))
        free += device_free.value
    return free or None


_GGML_DEVICE_GPU = 1  # enum ggml_backend_dev_type: CPU, GPU, IGPU, ACCEL


class LlamaCppProvider(LocalProvider):
    name = "llamacpp"
    Options = LlamaCppOptions

    def __init__(self, model: str, options: ProviderOptions) -> None:
        assert isinstance(options, LlamaCppOptions)
        self.opts: LlamaCppOptions = options
        self.gpu_layers: int = (
            options.n_gpu_layers if options.n_gpu_layers is not None else (-1 if gpu_build() else 0)
        )
        # `auto` is settled at load, from the model's KV size; until then, the backend's most.
        self.parallel: int = AUTO_SLOTS_GPU if self._on_gpu else AUTO_SLOTS_CPU
        if options.parallel != "auto":
            self.parallel = options.parallel
        super().__init__(model, options, parallel=self.parallel)
        self._llm: llama_cpp.Llama | None = None
        self._engine: BatchEngine | None = None

    def load(self) -> llama_cpp.Llama:
        """Load the weights (once); model file problems become one clear error."""
        if self._llm is not None:
            return self._llm
        self._path = resolve_model_file(self.model)
        try:
            with _load_log() as log:
                llm = llama_cpp.Llama(
                    model_path=str(self._path),
                    n_ctx=self.opts.n_ctx,
                    n_batch=self.opts.n_batch,
                    n_threads=self.opts.n_threads or os.cpu_count(),
                    n_gpu_layers=self.gpu_layers,
                    flash_attn=self._flash_attn,
                    use_mmap=self.opts.use_mmap,
                    verbose=self.opts.verbose,
                )
        except ValueError as exc:
            raise _load_error(self._path, log, exc) from None
        self._use_chat(
            llm.metadata.get("tokenizer.chat_template"),
            bos=_token_text(llm, llm.token_bos()),
            eos=_token_text(llm, llm.token_eos()),
        )
        self._use_fim(lambda marker: _is_token(llm, marker))
        if self.opts.parallel == "auto":
            available = _free_vram() if self._on_gpu else _available_memory()
            self.parallel = auto_parallel(self._on_gpu, _kv_bytes(llm, self.opts.n_ctx), available)
        self._pieces = _Pieces(llm)
        self._llm = llm
        return llm

    @property
    def _on_gpu(self) -> bool:
        return self.gpu_layers != 0 and gpu_build()

    @property
    def _flash_attn(self) -> bool:
        return self._on_gpu if self.opts.flash_attn is None else self.opts.flash_attn

    async def generate(self, messages: Sequence[Message], config: GenerateConfig) -> ModelOutput:
        if self.parallel != 1:
            return await self._generate_batched(messages, config)
        return await asyncio.to_thread(self._generate, messages, config)

    def _generate(self, messages: Sequence[Message], config: GenerateConfig) -> ModelOutput:
        with self._lock:
            llm = self.load()
            return self._complete(llm, self.render(messages, config), config)

    def _prepare(self, llm: llama_cpp.Llama, prompt: str, config: GenerateConfig) -> _Stream:
        # The template may write the BOS token itself; llama.cpp adds it when the vocab asks.
        body = prompt.removeprefix(self._bos) if self._bos else prompt
        tokens = llm.tokenize(body.encode("utf-8"), add_bos=True, special=True)
        budget = min(config.max_tokens, self.opts.n_ctx - len(tokens))
        return _Stream(self._pieces, tokens, self.stops(config), budget)

    def _complete(self, llm: llama_cpp.Llama, prompt: str, config: GenerateConfig) -> ModelOutput:
        start = time.perf_counter()
        stream = self._prepare(llm, prompt, config)
        if config.temperature > 0:
            llm.set_seed(config.seed)
        ttft: float | None = None
        generator = llm.generate(
            stream.prompt_tokens,
            temp=config.temperature,
            top_p=config.top_p if config.temperature > 0 else 1.0,
            top_k=0 if config.temperature > 0 else 1,
            min_p=0.0,
            repeat_penalty=1.0,
        )
        if stream.budget > 0:
            for token in generator:
                if ttft is None:
                    ttft = time.perf_counter() - start
                if stream.push(token):
                    break
        generator.close()
        return self._output(stream, prompt, time.perf_counter() - start, ttft)

    async def _generate_batched(
        self, messages: Sequence[Message], config: GenerateConfig
    ) -> ModelOutput:
        engine, llm = await asyncio.to_thread(self._engine_and_model)
        prompt = self.render(messages, config)
        stream = self._prepare(llm, prompt, config)
        if stream.budget <= 0:
            return self._output(stream, prompt, 0.0, None)
        done = await asyncio.wrap_future(engine.submit(stream.prompt_tokens, config, stream))
        # Timed from the moment the request took a slot: queueing for one is not the call's.
        ttft = done.first_token - done.started if done.first_token is not None else None
        return self._output(stream, prompt, done.ended - done.started, ttft, done.busy_s)

    def _engine_and_model(self) -> tuple[BatchEngine, llama_cpp.Llama]:
        with self._lock:
            llm = self.load()
            if self._engine is None:
                backend = self.opts.backend_sampling
                self._engine = BatchEngine(
                    llm._model.model,
                    llm.context_params,
                    slots=self.parallel,
                    n_ctx_per_slot=self.opts.n_ctx,
                    n_batch=self.opts.n_batch,
                    backend_sampling=self._on_gpu if backend is None else backend,
                    kv_unified=self.opts.kv_unified,
                )
            return self._engine, llm

    def _output(
        self,
        stream: _Stream,
        prompt: str,
        latency: float,
        ttft: float | None,
        busy: float | None = None,
    ) -> ModelOutput:
        return ModelOutput(
            text=stream.text,
            finish_reason=stream.finish,
            prompt_tokens=len(stream.prompt_tokens),
            completion_tokens=stream.n_out,
            latency_s=latency,
            ttft_s=ttft,
            prompt_text=prompt,
            peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            peak_vram_bytes=self._vram_bytes(),
            busy_s=busy,
            extra={"parallel": self.parallel},
        )

    def _vram_bytes(self) -> int | None:
        """This process's GPU memory (NVML), when layers are offloaded to a GPU."""
        if not self._on_gpu:
            return None
        try:
            import pynvml
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
            used = 0
            for i in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    if proc.pid == os.getpid() and proc.usedGpuMemory:
                        used += proc.usedGpuMemory
            return used or None
        except pynvml.NVMLError:
            return None

    def info(self) -> dict[str, Any]:
        self.load()
        return {
            "engine": "llama.cpp",
            "llama_cpp_python": llama_cpp.__version__,
            "model_file": str(self._path),
            "model_sha256": model_sha256(self.model, self._path),
            "family": self._family.name,
            "gpu_offload": llama_cpp.llama_supports_gpu_offload(),
            "options": self.opts.model_dump(),
            "parallel": self.parallel,
            "n_gpu_layers": self.gpu_layers,
        }

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._llm is not None:
            self._llm.close()
            self._llm = None


class _Pieces:
    """Each token's bytes and whether it ends generation, looked up once per model: a dict
    lookup per sampled token instead of two calls into llama.cpp."""

    def __init__(self, llm: llama_cpp.Llama) -> None:
        self._llm = llm
        self._known: dict[int, bytes | None] = {}

    def __call__(self, token: int) -> bytes | None:
        """The token's bytes, or None for an end-of-generation token."""
        try:
            return self._known[token]
        except KeyError:
            eog = llama_cpp.llama_vocab_is_eog(self._llm._model.vocab, token)
            piece = None if eog else self._llm.detokenize([token])
            self._known[token] = piece
            return piece


class _Stream(TokenSink):
    """Sampled tokens to text; done at end of generation, a stop string or the token budget."""

    def __init__(
        self, pieces: _Pieces, prompt_tokens: list[int], stops: tuple[str, ...], budget: int
    ) -> None:
        self.pieces = pieces
        self.prompt_tokens = prompt_tokens
        self.stops = stops
        self.budget = budget
        self.text = ""
        self.n_out = 0
        self.finish: FinishReason = "length"
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token: int) -> bool:
        if self.n_out >= self.budget:
            return True
        piece = self.pieces(token)
        if piece is None:
            self.finish = "stop"
            return True
        self.n_out += 1
        text = self._decoder.decode(piece)
        self.text += text
        cut = cut_at_stop(self.text, self.stops, len(text))
        if cut is not None:
            self.text = self.text[:cut]
            self.finish = "stop"
            return True
        return self.n_out >= self.budget


@contextlib.contextmanager
def _load_log() -> Iterator[list[str]]:
    """llama.cpp's log lines about failures while a model loads: the binding's own error says
    only that the load failed, the log says why (an unknown architecture, a truncated file)."""
    lines: list[str] = []
    default = llama_cpp._logger.llama_log_callback

    def record(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        # By words, not level: the numbers of the levels changed across ggml versions.
        if b"error" in text or b"failed" in text:
            lines.append(text.decode("utf-8", errors="replace").strip())
        default(level, text, user_data)

    callback = llama_cpp.llama_log_callback(record)
    with _LOAD_LOG_LOCK:
        llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
        try:
            yield lines
        finally:
            llama_cpp.llama_log_set(default, ctypes.c_void_p(0))


def _load_error(path: Path, log: list[str], exc: ValueError) -> UserError:
    """Why llama.cpp refused the model file, in one line: the first failure it logged."""
    first = log[0] if log else str(exc)
    reason = re.sub(r"^\w+: ", "", first).removeprefix("error loading model: ")
    if reason.startswith("unknown model architecture"):
        return ModelUnusableError(
            f"llama.cpp {llama_cpp.__version__} cannot run {path}: {reason}; "
            "a newer llama-cpp-python may, or pick another model"
        )
    return ModelFileError(f"llama.cpp could not load {path}: {reason}")


def _kv_bytes(llm: llama_cpp.Llama, n_ctx: int) -> int | None:
    """The f16 KV cache of one sequence of `n_ctx` tokens."""
    model = llm._model.model
    heads = llama_cpp.llama_model_n_head(model)
    if heads <= 0:
        return None
    head_dim = llama_cpp.llama_model_n_embd(model) // heads
    per_token = llama_cpp.llama_model_n_layer(model) * llama_cpp.llama_model_n_head_kv(model)
    return int(n_ctx * per_token * head_dim * 2 * 2)  # K and V, 2 bytes each


def _token_text(llm: llama_cpp.Llama, token: int) -> str:
    if token < 0:
        return ""
    return llm.detokenize([token], special=True).decode("utf-8", errors="replace")


def _is_token(llm: llama_cpp.Llama, text: str) -> bool:
    """Whether `text` is one special token of the model's vocab."""
    tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
    return len(tokens) == 1 and _token_text(llm, tokens[0]) == text
