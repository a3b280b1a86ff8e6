"""The n-gram lookup behind the torch engine's prompt-lookup speculation (`propose`), checked
against a plain search; the engine's answers with it are in test_transformers_engine.py."""

from __future__ import annotations

import random

import pytest

pytest.importorskip("torch")

from codeduel.models._torch_engine import propose


def plain(tokens: list[int], k: int, max_ngram: int) -> list[int]:
    for n in range(min(max_ngram, len(tokens) - 1), 0, -1):
        for i in range(len(tokens) - n - 1, -1, -1):
            if tokens[i : i + n] == tokens[-n:]:
                return tokens[i + n : i + n + k]
    return []


def test_the_longest_ngram_wins_then_the_most_recent_occurrence() -> None:
    # [1, 2, 3] occurred at the start; the single [3] more recently, before 7.
    assert propose([1, 2, 3, 4, 9, 3, 7, 1, 2, 3], 2) == [4, 9]
    # Only 1-grams recur: the latest earlier 5 is followed by 2, the first by 1.
    assert propose([5, 1, 5, 2, 5], 2) == [2, 5]
    assert propose([5, 1, 5, 2, 5], 2, max_ngram=1) == [2, 5]


def test_no_draft_without_an_earlier_occurrence() -> None:
    assert propose([], 4) == []
    assert propose([7], 4) == []
    assert propose([1, 2, 3], 4) == []


def test_a_draft_stops_at_the_end_and_may_run_into_the_tail() -> None:
    assert propose([1, 2, 1], 4) == [2, 1]
    assert propose([4, 4, 4, 4], 3) == [4]


def test_a_byte_match_across_two_tokens_is_not_a_match() -> None:
    # 256 then 0 hold the bytes of a 1 one byte off its boundary (little-endian).
    assert propose([256, 0, 5, 1], 2) == []


def test_agrees_with_a_plain_search() -> None:
    rng = random.Random(0)
    alphabet = [0, 1, 2, 3, 256, 65536, 151_935]
    for _ in range(3000):
        tokens = [rng.choice(alphabet) for _ in range(rng.randint(0, 30))]
        k, max_ngram = rng.randint(1, 5), rng.randint(1, 4)
        assert propose(tokens, k, max_ngram) == plain(tokens, k, max_ngram), tokens
