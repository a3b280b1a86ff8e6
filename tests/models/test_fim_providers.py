"""Fill-in-the-middle through the providers: the model's own FIM tokens in llama.cpp (the
bundled Qwen2.5-Coder, a real model), none for a model without them, and `/v1/completions`
with `suffix` on an OpenAI-compatible server (a real HTTP server on loopback)."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from codeduel.benchmarks import load_benchmark
from codeduel.errors import ModelUnusableError
from codeduel.models import GenerateConfig, load_model, parse_model_spec
from codeduel.models.families import FIM_FORMATS, fim_format_for


def test_a_fim_format_is_recognised_from_the_vocab() -> None:
    qwen = {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|im_start|>"}
    found = fim_format_for(qwen.__contains__)
    assert found is not None and found.name == "qwen2.5-coder"
    assert found.render("P", "S") == "<|fim_prefix|>P<|fim_suffix|>S<|fim_middle|>"
    # A chat model's vocab (SmolLM2's chatml) has none of them.
    assert fim_format_for({"<|im_start|>", "<|im_end|>"}.__contains__) is None
    assert len({f.name for f in FIM_FORMATS}) == len(FIM_FORMATS)


def _task() -> Any:
    bench = load_benchmark("humaneval-fim-single")
    return next(t for t in bench.tasks if t.task_id == "SingleLineInfilling/HumanEval/2/L0")


def test_llamacpp_fills_a_middle_in_the_models_own_fim_tokens() -> None:
    task = _task()
    model = load_model(
        parse_model_spec("llamacpp/qwen2.5-coder-0.5b-instruct"),
        {"n_threads": "2", "parallel": "1", "n_ctx": "1024"},
    )
    try:
        config = GenerateConfig(max_tokens=24, infill=task.fim(), stop=task.fim_stops())
        output = asyncio.run(model.generate((), config))
    finally:
        model.close()
    assert (
        output.prompt_text
        == f"<|fim_prefix|>{task.prompt}<|fim_suffix|>{task.suffix}<|fim_middle|>"
    )
    # The model writes the one line the hole holds (HumanEval/2's is `return number % 1.0`).
    assert output.finish_reason == "stop"
    assert "return" in output.text and "\n" not in output.text and "<|" not in output.text


def test_a_model_without_fim_tokens_is_unusable_for_fim_in_one_sentence() -> None:
    task = _task()
    model = load_model(parse_model_spec("llamacpp/smollm2-135m-instruct"), {"parallel": "1"})
    try:
        with pytest.raises(ModelUnusableError, match="no fill-in-the-middle tokens"):
            asyncio.run(model.generate((), GenerateConfig(max_tokens=4, infill=task.fim())))
    finally:
        model.close()


class _Completions(http.server.BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.bodies.append({"path": self.path, **body})
        answer = {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "text": "    return x\n", "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15},
        }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server() -> Iterator[str]:
    _Completions.bodies = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Completions)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_openai_compat_sends_the_prefix_as_prompt_and_the_suffix_as_suffix(server: str) -> None:
    model = load_model(parse_model_spec("openai-compat/coder"), {"base_url": server})
    assert model.provider.capabilities.infill
    config = GenerateConfig(max_tokens=32, infill=("def f(x):\n", "\nf(1)\n"), stop=("\n",))
    output = asyncio.run(model.generate((), config))
    model.close()
    (body,) = _Completions.bodies
    assert body["path"] == "/v1/completions"
    assert (body["prompt"], body["suffix"]) == ("def f(x):\n", "\nf(1)\n")
    assert body["max_tokens"] == 32 and body["stop"] == ["\n"]
    assert output.text == "    return x\n" and output.finish_reason == "stop"
    assert (output.prompt_tokens, output.completion_tokens) == (11, 4)


def test_openais_own_chat_models_get_fim_as_a_chat_prompt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model = load_model(parse_model_spec("openai/gpt-4.1"), {})
    assert not model.provider.capabilities.infill
    model.close()
