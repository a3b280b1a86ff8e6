"""How much of a model's answer ended in the extracted code, counted in characters."""

from __future__ import annotations

from codeduel.extract import extract_code, sanitize
from codeduel.prompts import OPEN_FENCE, RESPONSE_PREFIX
from codeduel.report._economy import code_chars
from tests.report.samples import ANSWER, CODE, PROSE


def test_the_sanitized_code_is_what_counts() -> None:
    # What a run stores: extraction from prefill + answer, then the sanitizer.
    prefill = f"{RESPONSE_PREFIX}\n{OPEN_FENCE}"
    code = sanitize(extract_code(prefill + ANSWER, "add").code, "add")
    assert code == CODE
    assert (len(ANSWER), len(CODE)) == (100, 60)
    # The example call the sanitizer dropped and the prose after the fence are not code.
    assert code_chars(ANSWER, code) == 60


def test_no_code_counts_nothing() -> None:
    assert len(PROSE) == 40
    assert extract_code(PROSE, "add").method == "none"
    assert code_chars(PROSE, "") == 0
    assert code_chars("", "") == 0


def test_dedented_code_counts_its_own_characters() -> None:
    answer = "Here:\n    def f():\n        return 1\n\n    x = f()\n"
    code = "def f():\n    return 1\n"
    assert extract_code(answer, "f").code.startswith(code)
    assert code_chars(answer, code) == len(code) == 22


def test_lines_the_answer_lacks_count_nothing() -> None:
    # A signature that came from a prefill, not from the model.
    answer = "    return a - b\n```\n"
    assert code_chars(answer, "def sub(a, b):\n    return a - b\n") == 17
    # Found in order: a line repeated in the code counts once per time the answer has it.
    assert code_chars("x = 1\n", "x = 1\nx = 1\n") == 6
    assert code_chars("x = 1\ny = 2\nx = 1\n", "x = 1\n\nx = 1\n") == 13


def test_capped_at_the_answer() -> None:
    # Generation stopped at the closing fence, before the last newline that the code has.
    answer = "def f():\n    return 1"
    assert code_chars(answer, "def f():\n    return 1\n") == len(answer) == 21
