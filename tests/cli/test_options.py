from __future__ import annotations

import click
import pytest

from codeduel.cli._options import parse_model_options

SPECS = [
    "llamacpp/qwen2.5-coder-0.5b-instruct",
    "llamacpp/smollm2-135m-instruct",
    "anthropic/claude-sonnet-4-5",
]


def test_plain_options_apply_to_every_model() -> None:
    got = parse_model_options(("n_threads=2",), SPECS[:2])
    assert got == {SPECS[0]: {"n_threads": "2"}, SPECS[1]: {"n_threads": "2"}}


def test_options_bind_to_a_provider_or_one_model() -> None:
    got = parse_model_options(
        (
            "llamacpp:n_threads=2",
            f"{SPECS[1]}:n_ctx=1024",
            "anthropic:base_url=http://127.0.0.1:9/x",
        ),
        SPECS,
    )
    assert got[SPECS[0]] == {"n_threads": "2"}
    assert got[SPECS[1]] == {"n_threads": "2", "n_ctx": "1024"}
    # A value may hold colons (URLs); the key never does.
    assert got[SPECS[2]] == {"base_url": "http://127.0.0.1:9/x"}


def test_a_target_that_is_not_in_the_run_is_an_error() -> None:
    with pytest.raises(click.BadParameter, match="names no --model"):
        parse_model_options(("openai:timeout_s=5",), SPECS)
    with pytest.raises(click.BadParameter, match="KEY=VALUE"):
        parse_model_options(("llamacpp:",), SPECS)
