"""The `transformers` provider's batching engine on the real tiny model (float32 on the CPU here;
the same code runs on a GPU with CUDA graphs, measured by bench/gpu_humaneval.py).

Needs torch, transformers and gguf (`pip install 'codeduel[gpu]'`); skipped where they are
missing. The reference is Hugging Face's own `generate` on the same weights.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("gguf")

from codeduel.benchmarks import load_benchmark  # noqa: E402
from codeduel.models import GenerateConfig, Message, Model, load_model, parse_model_spec  # noqa: E402
from codeduel.models._torch_engine import TorchEngine  # noqa: E402
from codeduel.models._torch_weights import from_hf  # noqa: E402
from codeduel.models.bundled import resolve_model_file  # noqa: E402
from codeduel.prompts import code_prompt  # noqa: E402

pytestmark = pytest.mark.slow

TINY = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def hf() -> tuple[Any, Any]:
    path = resolve_model_file(TINY)
    kwargs = {"gguf_file": path.name}
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent), **kwargs)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), dtype=torch.float32, **kwargs
    )
    model.eval()
    return model, tokenizer


@pytest.fixture(scope="module")
def prompt_ids(hf: tuple[Any, Any]) -> list[list[int]]:
    _, tokenizer = hf
    texts = [
        "def fibonacci(n):\n    ",
        "The capital of France is",
        "# Sort a list of numbers in Python\nnumbers = [3, 1, 2]\n",
        "Once upon a time, in a land far away, there lived a",
    ]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


class Collect:
    def __init__(self, stop_after: int | None = None) -> None:
        self.tokens: list[int] = []
        self.ended = False
        self.stop_after = stop_after

    def push(self, token: int) -> bool:
        self.tokens.append(token)
        return self.stop_after is not None and len(self.tokens) >= self.stop_after

    def end_of_turn(self) -> None:
        self.ended = True


def reference(model: Any, ids: list[int], n: int) -> list[int]:
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]), max_new_tokens=n, do_sample=False, eos_token_id=None
        )
    return out[0, len(ids) :].tolist()


def test_greedy_tokens_equal_transformers_generate_batched(
    hf: tuple[Any, Any], prompt_ids: list[list[int]]
) -> None:
    model, _ = hf
    budgets = [24, 9, 17, 30]
    expected = [reference(model, ids, n) for ids, n in zip(prompt_ids, budgets, strict=True)]
    engine = TorchEngine(
        from_hf(model, torch.device("cpu"), torch.float32), slots=4, max_len=128, stop_ids=[]
    )
    try:
        futures = [
            engine.submit(ids, budget=n, sink=Collect())
            for ids, n in zip(prompt_ids, budgets, strict=True)
        ]
        got = [f.result(timeout=120).tokens for f in futures]
    finally:
        engine.close()
    # Sequences end at different steps, so later steps run on moved (compacted) slots.
    assert got == expected


def test_more_requests_than_slots_queue_and_reuse_freed_slots(
    hf: tuple[Any, Any], prompt_ids: list[list[int]]
) -> None:
    model, _ = hf
    requests = [(ids, n) for n in (5, 13) for ids in prompt_ids]  # 8 requests, 3 slots
    expected = [reference(model, ids, n) for ids, n in requests]
    engine = TorchEngine(
        from_hf(model, torch.device("cpu"), torch.float32), slots=3, max_len=128, stop_ids=[]
    )
    try:
        futures = [engine.submit(ids, budget=n, sink=Collect()) for ids, n in requests]
        got = [f.result(timeout=120).tokens for f in futures]
    finally:
        engine.close()
    assert got == expected


def test_a_stop_token_ends_only_its_sequence(
    hf: tuple[Any, Any], prompt_ids: list[list[int]]
) -> None:
    model, _ = hf
    ids = prompt_ids[1]
    free = reference(model, ids, 12)
    stop = free[5]
    engine = TorchEngine(
        from_hf(model, torch.device("cpu"), torch.float32),
        slots=2,
        max_len=128,
        stop_ids=[stop],
    )
    try:
        sink, other = Collect(), Collect()
        first = engine.submit(ids, budget=12, sink=sink)
        second = engine.submit(prompt_ids[0], budget=12, sink=other)
        done, done_other = first.result(timeout=60), second.result(timeout=60)
    finally:
        engine.close()
    assert done.tokens == free[: free.index(stop)]
    assert sink.ended
    assert len(done_other.tokens) == 12 or other.ended


@pytest.fixture(scope="module")
def repeating_ids(hf: tuple[Any, Any]) -> list[list[int]]:
    """Prompts whose greedy answers repeat them, so that prompt-lookup drafts are accepted."""
    _, tokenizer = hf
    texts = [
        "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,",
        "The cat sat on the mat. The cat sat on the mat. The cat",
        "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n\n\ndef mul(",
    ]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def test_speculation_gives_the_greedy_tokens_and_accepts_drafts(
    hf: tuple[Any, Any], prompt_ids: list[list[int]], repeating_ids: list[list[int]]
) -> None:
    model, _ = hf
    budgets = [24, 9, 17, 31, 26, 40, 30]
    requests = list(zip(prompt_ids[:3] + repeating_ids + prompt_ids[3:], budgets, strict=True))
    expected = [reference(model, ids, n) for ids, n in requests]
    # 3 slots for 8 requests, speculating at 2 or fewer active: slots are freed and refilled,
    # and steps switch between the plain chunks and verify steps; while the sampled request
    # runs, every step is a plain one. The repeating prompts come late, to be in the tail.
    engine = TorchEngine(
        from_hf(model, torch.device("cpu"), torch.float32),
        slots=3,
        max_len=160,
        stop_ids=[],
        speculate=4,
        speculate_max_batch=2,
    )
    try:
        futures = [engine.submit(ids, budget=n, sink=Collect()) for ids, n in requests[:4]]
        sampled = engine.submit(prompt_ids[1], budget=10, sink=Collect(), temperature=1.0)
        futures += [engine.submit(ids, budget=n, sink=Collect()) for ids, n in requests[4:]]
        got = [f.result(timeout=240).tokens for f in futures]
        assert len(sampled.result(timeout=60).tokens) == 10
    finally:
        engine.close()
    assert got == expected
    # Drafts were verified, some taken and some refused: both paths of a verify step ran.
    assert 0 < engine.accepted < engine.drafted
    assert engine.steps < sum(len(t) for t in expected)


def test_speculation_stops_inside_the_accepted_tokens(
    hf: tuple[Any, Any], repeating_ids: list[list[int]]
) -> None:
    model, _ = hf
    ids, other = repeating_ids[0], repeating_ids[1]
    free = reference(model, ids, 24)
    # The stop token ends the other prompt's answer, never this one's.
    free_other = reference(model, other, 24)
    stop = next(t for t in free_other[6:] if t not in free)
    engine = TorchEngine(
        from_hf(model, torch.device("cpu"), torch.float32),
        slots=2,
        max_len=128,
        stop_ids=[stop],
        speculate=6,
    )
    try:
        sinks = [Collect(stop_after=j) for j in range(3, 9)]
        futures = [engine.submit(ids, budget=24, sink=sink) for sink in sinks]
        # Budgets that end mid-step, and the stop token.
        budgets = [engine.submit(ids, budget=j, sink=Collect()) for j in (5, 10)]
        ender = Collect()
        ended = engine.submit(other, budget=24, sink=ender)
        done = [f.result(timeout=120).tokens for f in futures]
        by_budget = [f.result(timeout=120).tokens for f in budgets]
        until_stop = ended.result(timeout=120).tokens
    finally:
        engine.close()
    # A sink that says done gets no token after it, whatever the step had accepted.
    for j, (sink, tokens) in enumerate(zip(sinks, done, strict=True), start=3):
        assert tokens == sink.tokens == free[:j]
    assert by_budget == [free[:5], free[:10]]
    assert until_stop == free_other[: free_other.index(stop)] and ender.ended
    assert 0 < engine.accepted < engine.drafted


def test_a_prompt_that_leaves_no_room_is_refused(hf: tuple[Any, Any]) -> None:
    model, _ = hf
    engine = TorchEngine(
        from_hf(model, torch.device("cpu"), torch.float32), slots=1, max_len=64, stop_ids=[]
    )
    try:
        with pytest.raises(Exception, match="leaves no room"):
            engine.submit(list(range(1, 70)), budget=5, sink=Collect())
    finally:
        engine.close()


@pytest.fixture(scope="module")
def provider_model() -> Iterator[Model]:
    model = load_model(
        parse_model_spec(f"transformers/{TINY}"),
        {"device": "cpu", "dtype": "float32", "parallel": "3", "max_len": "1024"},
    )
    yield model
    model.close()


def test_provider_batched_equals_one_at_a_time(provider_model: Model) -> None:
    tasks = load_benchmark("humaneval").select(limit=4)
    prompts = []
    for task in tasks:
        prompt = code_prompt(task)
        prompts.append((prompt.messages, prompt.config(GenerateConfig(max_tokens=60))))
    count = (Message("user", "Count from 1 to 30, one number a line."),)
    prompts.append((count, GenerateConfig(50)))

    def run(batch: list) -> list:
        model = Model(provider_model.spec, provider_model.provider)

        async def go() -> list:
            return await asyncio.gather(*(model.generate(m, c) for m, c in batch))

        return asyncio.run(go())

    serial = [run([p])[0] for p in prompts]
    together = run(prompts)
    assert [o.text for o in together] == [o.text for o in serial]
    for out in together:
        assert out.completion_tokens > 0
        assert out.finish_reason in ("stop", "length")
        assert "\n```" not in out.text  # cut at the closing fence
    for out in together[:4]:
        assert out.prompt_text is not None and out.prompt_text.endswith("```python\n")
    # The fence-stopped HumanEval answers end by the stop string, within their budget.
    assert any(o.finish_reason == "stop" for o in together[:4])


def test_provider_speculation_gives_the_same_answers(provider_model: Model) -> None:
    model = load_model(
        parse_model_spec(f"transformers/{TINY}"),
        {"device": "cpu", "dtype": "float32", "parallel": "3", "max_len": "1024", "speculate": "5"},
    )
    tasks = load_benchmark("humaneval").select(limit=3)
    prompts = []
    for task in tasks:
        prompt = code_prompt(task)
        prompts.append((prompt.messages, prompt.config(GenerateConfig(max_tokens=60))))

    def run(model: Model) -> list:
        async def go() -> list:
            return await asyncio.gather(*(model.generate(m, c) for m, c in prompts))

        return asyncio.run(go())

    try:
        plain = run(Model(provider_model.spec, provider_model.provider))
        speculated = run(model)
        engine = model.provider._engine  # type: ignore[attr-defined]
    finally:
        model.close()
    # The same text cut at the same stop strings, from fewer steps.
    assert [o.text for o in speculated] == [o.text for o in plain]
    assert [o.finish_reason for o in speculated] == [o.finish_reason for o in plain]
    assert engine.accepted > 0


def test_sampling_draws_differ_and_stay_in_vocab(provider_model: Model) -> None:
    messages = (Message("user", "Write a short poem about the sea."),)
    config = GenerateConfig(max_tokens=20, temperature=1.0, top_p=0.95)
    model = Model(provider_model.spec, provider_model.provider)

    async def go() -> list:
        return await asyncio.gather(*(model.generate(messages, config) for _ in range(3)))

    outs = asyncio.run(go())
    assert all(o.completion_tokens > 0 for o in outs)
    assert len({o.text for o in outs}) > 1


def test_cuda_missing_is_one_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    from codeduel.errors import OptionError

    model = load_model(parse_model_spec(f"transformers/{TINY}"), {"device": "cuda"})
    with pytest.raises(OptionError, match="no CUDA GPU"):
        asyncio.run(model.generate((Message("user", "hi"),), GenerateConfig(max_tokens=2)))


def test_the_stream_stops_at_the_first_stop_and_decodes_rarely(hf: tuple[Any, Any]) -> None:
    from codeduel.models.transformers import _StopFilter, _Stream, _Vocab
    from codeduel.prompts import AFTER_CODE, CLOSE_FENCE

    _, tokenizer = hf
    stops = (CLOSE_FENCE, *AFTER_CODE)
    vocab = _Vocab.of(tokenizer)
    check = _StopFilter(
        vocab,
        vocab.candidates(frozenset(s[-1] for s in stops)),
        newline_led=True,
        longest=max(len(s) for s in stops),
    )
    code = "def add(a, b):\n    print('adding')\n    assert a is not None\n    return a + b\n"
    decodes = 0

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(tokenizer, name)

        def decode(self, *args: Any, **kwargs: Any) -> str:
            nonlocal decodes
            decodes += 1
            return str(tokenizer.decode(*args, **kwargs))

    for tail, expected in [("\nprint(add(1, 2))\n", code.rstrip("\n")), ("", None)]:
        decodes = 0
        stream = _Stream(Counting(), stops, check)
        text = code.rstrip("\n") + tail if tail else code
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        stopped = any(stream.push(t) for t in ids)
        if expected is None:
            assert not stopped and stream.finish == "length"
            assert stream.final_text() == code
        else:
            assert stopped and stream.finish == "stop"
            # Cut before the top-level print; the indented print and assert are code.
            assert stream.final_text() == expected
        # Only tokens near a line start with a stop's last character are looked at.
        assert decodes < len(ids) / 2


def test_an_architecture_the_engine_cannot_run_is_unusable() -> None:
    from codeduel.errors import ModelUnusableError

    config = transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=16, n_positions=16)
    with pytest.raises(
        ModelUnusableError, match="Llama-family models .* not 'gpt2': run a GGUF file of this"
    ):
        from_hf(transformers.GPT2LMHeadModel(config), torch.device("cpu"), torch.float32)
