"""Continuous batching on the real tiny model: greedy answers identical to one call at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from codeduel.benchmarks import load_benchmark
from codeduel.models import GenerateConfig, Message, Model, load_model, parse_model_spec
from codeduel.prompts import code_prompt

pytestmark = pytest.mark.slow

TINY = parse_model_spec("llamacpp/smollm2-135m-instruct")
OPTIONS = {"n_threads": "2", "n_ctx": "1024"}


@pytest.fixture(scope="module")
def prompts() -> list[tuple[tuple[Message, ...], GenerateConfig]]:
    """HumanEval prompts with the prefilled fence, at a few token budgets and stops."""
    tasks = load_benchmark("humaneval").select(limit=6)
    out = []
    for i, task in enumerate(tasks):
        prompt = code_prompt(task)
        out.append((prompt.messages, prompt.config(GenerateConfig(max_tokens=(40, 120)[i % 2]))))
    # No fence stop: the answer runs to the end of the turn or the budget.
    out.append(((Message("user", "Count from 1 to 30, one number a line."),), GenerateConfig(90)))
    return out


@pytest.fixture(scope="module")
def one_at_a_time() -> Iterator[Model]:
    model = load_model(TINY, {**OPTIONS, "parallel": "1"})
    yield model
    model.close()


@pytest.fixture(scope="module")
def batched() -> Iterator[Model]:
    model = load_model(TINY, {**OPTIONS, "parallel": "3"})
    yield model
    model.close()


def _texts(model: Model, prompts: list[tuple[tuple[Message, ...], GenerateConfig]]) -> list:
    # A wrapper per event loop (its semaphore belongs to one); the provider and engine stay.
    model = Model(model.spec, model.provider)

    async def go() -> list:
        return await asyncio.gather(*(model.generate(m, c) for m, c in prompts))

    return asyncio.run(go())


def test_greedy_batched_equals_one_at_a_time(
    one_at_a_time: Model, batched: Model, prompts: list
) -> None:
    serial = [asyncio.run(one_at_a_time.generate(m, c)) for m, c in prompts]
    # More requests than slots: later ones join the batch as earlier ones finish.
    together = _texts(batched, prompts)
    assert [o.text for o in together] == [o.text for o in serial]
    assert [o.completion_tokens for o in together] == [o.completion_tokens for o in serial]
    assert [o.finish_reason for o in together] == [o.finish_reason for o in serial]
    assert [o.prompt_tokens for o in together] == [o.prompt_tokens for o in serial]
    # The budgets and stops did their part: some answers were cut, some ended by themselves.
    assert {o.finish_reason for o in together} == {"stop", "length"}
    for out, (_, config) in zip(together, prompts, strict=True):
        assert out.completion_tokens <= config.max_tokens
        assert out.ttft_s is not None and 0 < out.ttft_s <= out.latency_s
        assert out.extra["parallel"] == 3
        # Its share of the engine: less than its latency whenever it shared a step.
        assert out.busy_s is not None and 0 < out.busy_s <= out.latency_s
    assert sum(o.busy_s for o in together) < sum(o.latency_s for o in together)


def test_a_cancelled_call_frees_its_slot(batched: Model, prompts: list) -> None:
    messages, config = prompts[1]
    batched = Model(batched.spec, batched.provider)

    async def go() -> list:
        # Fill every slot, cancel all but one mid-generation, then ask again.
        calls = [asyncio.ensure_future(batched.generate(messages, config)) for _ in range(3)]
        await asyncio.sleep(0.3)
        for call in calls[1:]:
            call.cancel()
        first = await calls[0]
        again = await asyncio.wait_for(
            asyncio.gather(*(batched.generate(messages, config) for _ in range(3))), 120
        )
        return [first, *again]

    outputs = asyncio.run(go())
    assert len({o.text for o in outputs}) == 1


def test_sampling_is_seeded_per_call(batched: Model, prompts: list) -> None:
    messages, _ = prompts[0]
    hot = [GenerateConfig(max_tokens=60, temperature=1.0, top_p=0.95, seed=s) for s in (1, 1, 2, 3)]
    outputs = _texts(batched, [(messages, c) for c in hot])
    assert outputs[0].text == outputs[1].text
    assert len({o.text for o in outputs}) > 1


def test_a_prompt_longer_than_a_slot_generates_nothing(batched: Model) -> None:
    long = (Message("user", "word " * 1500),)
    out = asyncio.run(batched.generate(long, GenerateConfig(max_tokens=20)))
    assert out.completion_tokens == 0 and out.finish_reason == "length"


def test_parallel_auto_batches_and_answers_as_one_at_a_time(
    one_at_a_time: Model, prompts: list
) -> None:
    model = load_model(TINY, OPTIONS)  # parallel=auto, the default
    try:
        together = _texts(model, prompts)
        assert model.provider.info()["parallel"] == model.provider.parallel > 1
    finally:
        model.close()
    serial = [asyncio.run(one_at_a_time.generate(m, c)) for m, c in prompts]
    assert [o.text for o in together] == [o.text for o in serial]
    assert [o.extra["parallel"] for o in together] == [model.provider.parallel] * len(prompts)


def test_backend_sampling_answers_as_the_host_sampler(
    one_at_a_time: Model, batched: Model, prompts: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Greedy in llama.cpp's graph gives the host sampler's tokens; a sampled call beside the
    greedy ones still draws on the host, from its own seed, on a sequence whose greedy chain
    was taken off (else it would come back greedy)."""
    import llama_cpp

    read, sample = llama_cpp.llama_get_sampled_token_ith, llama_cpp.llama_sampler_sample
    in_graph: list[int] = []
    on_host: list[int] = []

    def read_spy(ctx: object, row: int) -> int:
        in_graph.append(token := int(read(ctx, row)))
        return token

    def sample_spy(sampler: object, ctx: object, row: int) -> int:
        on_host.append(token := int(sample(sampler, ctx, row)))
        return token

    hot = GenerateConfig(max_tokens=60, temperature=1.0, top_p=0.95, seed=7)
    mixed = [*prompts[:4], (prompts[0][0], hot), *prompts[4:]]
    host = _texts(batched, mixed)
    monkeypatch.setattr(llama_cpp, "llama_get_sampled_token_ith", read_spy)
    monkeypatch.setattr(llama_cpp, "llama_sampler_sample", sample_spy)
    model = load_model(TINY, {**OPTIONS, "parallel": "3", "backend_sampling": "true"})
    try:
        on_backend = _texts(model, mixed)
        assert model.provider._engine is not None and model.provider._engine.backend_sampling
    finally:
        model.close()
    assert [o.text for o in on_backend] == [o.text for o in host]
    assert [o.completion_tokens for o in on_backend] == [o.completion_tokens for o in host]
    serial = [asyncio.run(one_at_a_time.generate(m, c)) for m, c in prompts]
    assert [o.text for i, o in enumerate(on_backend) if i != 4] == [o.text for o in serial]
    # The greedy tokens came out of the graph (a real token each), the sampled call's did not.
    assert len(in_graph) > 100 and -1 not in in_graph
    assert len(on_host) >= hot.max_tokens // 2


def test_each_step_decodes_sequences_of_consecutive_ids(
    prompts: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a KV stream per sequence llama.cpp puts only consecutive sequence ids in one
    micro-batch; slots freed and refilled out of order must not scatter them (they did: the
    ids of freed slots were reused last-freed first, and a step of 164 sequences on an H200
    took 76-158 ms in up to 164 micro-batches instead of ~10 ms)."""
    import llama_cpp

    decode = llama_cpp.llama_decode
    steps: list[list[int]] = []

    def spy(ctx: object, batch: llama_cpp.llama_batch) -> int:
        ids = [batch.seq_id[i][0] for i in range(batch.n_tokens)]
        if all(batch.logits[i] for i in range(batch.n_tokens)):  # one token per sequence
            steps.append(ids)
        return int(decode(ctx, batch))

    monkeypatch.setattr(llama_cpp, "llama_decode", spy)
    model = load_model(TINY, {**OPTIONS, "parallel": "4"})
    try:
        # Budgets that end the calls in another order than they started.
        configs = [GenerateConfig(max_tokens=n) for n in (70, 12, 45, 8, 30, 60, 5, 25, 40)]
        messages = prompts[-1][0]
        outputs = _texts(model, [(messages, c) for c in configs])
    finally:
        model.close()
    assert len(steps) > 20
    assert max(len(ids) for ids in steps) == 4
    assert all(ids == list(range(ids[0], ids[0] + len(ids))) for ids in steps), [
        ids for ids in steps if ids != list(range(ids[0], ids[0] + len(ids)))
    ][:3]
    # The moves kept every sequence's own cache: each answer is the one-call-at-a-time one.
    alone = load_model(TINY, {**OPTIONS, "parallel": "1"})
    try:
        serial = [asyncio.run(alone.generate(messages, c)) for c in configs]
    finally:
        alone.close()
    assert [o.text for o in outputs] == [o.text for o in serial]
