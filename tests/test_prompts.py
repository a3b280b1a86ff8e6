"""The code prompt's stops: generation ends where the answer's code ends."""

from __future__ import annotations

import pytest

from codeduel.benchmarks import load_benchmark
from codeduel.extract import extract_code, sanitize
from codeduel.models import GenerateConfig
from codeduel.prompts import AFTER_CODE, CLOSE_FENCE, code_prompt

FUNCTION = """from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    for i, a in enumerate(numbers):
        for b in numbers[i + 1 :]:
            if abs(a - b) < threshold:
                print("close")  # indented: part of the function, not a stop
                return True
    return False
"""


def test_the_fence_and_top_level_leftovers_are_stops() -> None:
    task = load_benchmark("humaneval").select(limit=1)[0]
    config = code_prompt(task).config(GenerateConfig(stop=("STOP",)))
    assert config.stop == ("STOP", CLOSE_FENCE, *AFTER_CODE)
    assert config.prefill.endswith("```python\n")


@pytest.mark.parametrize(
    "tail",
    [
        '\nprint(has_close_elements([1.0, 2.0], 0.5))  # False\nprint("more")\n```',
        "\nassert has_close_elements([1.0, 1.1], 0.5)\n```",
        '\nif __name__ == "__main__":\n    print(has_close_elements([1.0], 0.1))\n```',
    ],
)
def test_stopping_at_a_leftover_keeps_the_code_the_score_uses(tail: str) -> None:
    prefill = "```python\n"
    full = sanitize(extract_code(prefill + FUNCTION + tail).code, "has_close_elements")
    # What the model would have written had it stopped at the first top-level leftover.
    cut = min(i for s in AFTER_CODE if (i := (FUNCTION + tail).find(s)) >= 0)
    stopped = (FUNCTION + tail)[:cut] + CLOSE_FENCE
    assert cut >= len(FUNCTION) - 1  # the indented print inside the function is not a stop
    code = sanitize(extract_code(prefill + stopped).code, "has_close_elements")
    assert code == full
    assert "print(has_close" not in code and "assert" not in code
