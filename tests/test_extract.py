from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codeduel.extract import Extraction, extract_code

FENCE = "```"
ADD = "def add(a, b):\n    return a + b\n"


def fenced(code: str, info: str = "python", fence: str = FENCE) -> str:
    return f"{fence}{info}\n{code}{fence}\n"


# --- fenced blocks ---------------------------------------------------------------------------


@pytest.mark.parametrize("info", ["python", "py", "Python3", "python3.11", "", " python "])
def test_fence_info_strings_that_mean_python(info: str) -> None:
    assert extract_code(f"Here you go:\n{fenced(ADD, info)}Done.") == Extraction(ADD, "fenced")


def test_tilde_fence() -> None:
    assert extract_code(f"Code:\n{fenced(ADD, 'python', '~~~')}") == Extraction(ADD, "fenced")


def test_a_backtick_line_does_not_close_a_tilde_fence() -> None:
    text = "~~~python\ns = '''\n```\n'''\n~~~\n"
    assert extract_code(text) == Extraction("s = '''\n```\n'''\n", "fenced")


def test_longer_closing_fence_closes() -> None:
    assert extract_code(f"```python\n{ADD}`````\ntrailing").method == "fenced"


def test_indented_fence_is_dedented() -> None:
    text = (
        "1. Write the function:\n\n   ```python\n   def add(a, b):\n       return a + b\n   ```\n"
    )
    assert extract_code(text) == Extraction(ADD, "fenced")


def test_crlf_line_endings() -> None:
    crlf = ADD.replace("\n", "\r\n")
    text = f"Sure.\r\n```python\r\n{crlf}```\r\nBye.\r\n"
    assert extract_code(text) == Extraction(ADD, "fenced")


def test_prose_code_prose() -> None:
    text = (
        "To add two numbers we simply use the + operator.\n\n"
        f"{fenced(ADD)}\n"
        "This runs in O(1) time. Let me know if you need anything else!"
    )
    assert extract_code(text, "add") == Extraction(ADD, "fenced")


def test_usage_example_first_then_definition() -> None:
    usage = "result = add(2, 3)\nprint(result)  # prints 5, and this block is the longest\n"
    text = f"You would call it like this:\n{fenced(usage)}\nHere is the code:\n{fenced(ADD)}"
    assert extract_code(text, "add").code == ADD


def test_definition_first_then_tests() -> None:
    tests = "assert add(1, 2) == 3\nassert add(-1, 1) == 0\nassert add(0, 0) == 0\n"
    assert extract_code(f"{fenced(ADD)}Tests:\n{fenced(tests)}", "add").code == ADD


def test_importing_the_entry_point_is_not_defining_it() -> None:
    usage = "from solution import add\n\nfor a in range(10):\n    print(add(a, a))\n"
    assert extract_code(f"{fenced(ADD)}{fenced(usage)}", "add").code == ADD


def test_later_complete_definition_wins() -> None:
    draft = "def add(a, b):\n    return a - b\n"
    assert extract_code(f"First try:\n{fenced(draft)}Fixed:\n{fenced(ADD)}", "add").code == ADD


def test_complete_definition_beats_a_later_broken_one() -> None:
    broken = "def add(a, b):\n    return (a +\n"
    text = f"{fenced(ADD)}Or, shorter:\n{fenced(broken)}"
    assert extract_code(text, "add") == Extraction(ADD, "fenced")


def test_definition_found_by_regex_when_block_does_not_parse() -> None:
    usage = "print(add(1, 2))\nprint(add(3, 4))\nprint(add(5, 6))\nprint(add(7, 8))\n"
    broken = "def add(a, b):\n    return a +\n"
    assert extract_code(f"{fenced(usage)}{fenced(broken)}", "add").code == broken


@pytest.mark.parametrize(
    ("definition", "entry_point"),
    [
        ("class Solution:\n    def twoSum(self, nums):\n        return nums\n", "Solution"),
        ("add = lambda a, b: a + b\n", "add"),
        ("import operator\n\nadd: object = operator.add\n", "add"),
        ("try:\n    from math import fsum as add\nexcept ImportError:\n    add = sum\n", "add"),
    ],
)
def test_class_and_assignment_count_as_definitions(definition: str, entry_point: str) -> None:
    other = "x = [1, 2, 3]\ny = [4, 5, 6]\nz = [a * b for a, b in zip(x, y)]\nprint(sum(z))\n"
    assert extract_code(f"{fenced(definition)}{fenced(other)}", entry_point).code == definition


def test_without_entry_point_the_longest_parsing_block_wins() -> None:
    broken = "def add(a, b):\n    return (a + b +  # the longest block, but broken\n"
    text = fenced("x = 1\n") + fenced(broken) + fenced(ADD)
    assert extract_code(text).code == ADD


def test_without_any_parsing_block_the_first_wins() -> None:
    assert extract_code(fenced("def (:\n") + fenced("return ]\n")).code == "def (:\n"


def test_other_languages_are_skipped_when_a_python_block_exists() -> None:
    install = "pip install --upgrade numpy scipy pandas matplotlib seaborn\n"
    text = f"{fenced(install, 'bash')}{fenced(ADD)}"
    assert extract_code(text, "add").code == ADD


def test_other_language_is_used_when_it_is_all_there_is() -> None:
    assert extract_code(fenced(ADD, "text")) == Extraction(ADD, "fenced")


def test_empty_fence_falls_back_to_the_text() -> None:
    assert extract_code(f"{ADD}\n```python\n```\n") == Extraction(ADD, "ast")


# --- unclosed fences and prefills ------------------------------------------------------------


def test_unclosed_final_fence_is_truncated_code() -> None:
    text = f"Here:\n```python\n{ADD}\ndef sub(a, b):\n    return a -"
    assert extract_code(text) == Extraction(
        f"{ADD}\ndef sub(a, b):\n    return a -\n", "fenced_unclosed"
    )


def test_prefilled_fence_with_closer_eaten_by_stop_sequence() -> None:
    assert extract_code(f"```python\n{ADD}") == Extraction(ADD, "fenced_unclosed")


def test_prefilled_fence_with_closer_present() -> None:
    assert extract_code(f"```python\n{ADD}```\nThis adds.") == Extraction(ADD, "fenced")


def test_prefill_left_out_of_text_leaves_an_orphan_closer() -> None:
    text = f"{ADD}```\n\nThe function returns the sum of its arguments."
    assert extract_code(text, "add") == Extraction(ADD, "fenced")


def test_orphan_closer_then_another_block() -> None:
    better = "def add(a: int, b: int) -> int:\n    return a + b\n"
    text = f"{ADD}```\nWith types:\n{fenced(better)}"
    assert extract_code(text, "add").code == better


def test_bare_fence_after_prose_is_an_opener() -> None:
    assert extract_code(f"Hello\n```\n{ADD}```\n") == Extraction(ADD, "fenced")


def test_prefill_left_out_and_closer_eaten_is_raw() -> None:
    assert extract_code(ADD) == Extraction(ADD, "raw")


# --- reasoning -------------------------------------------------------------------------------


def test_think_block_is_ignored() -> None:
    draft = "def add(a, b):\n    return 0\n"
    text = f"<think>Maybe\n{fenced(draft)}no, that is wrong.</think>\n{fenced(ADD)}"
    assert extract_code(text, "add").code == ADD


def test_think_block_mid_line() -> None:
    assert extract_code(f"Answer:<think>hm</think>{fenced(ADD)}").code == ADD


def test_orphan_think_closer_from_a_prompt_side_opener() -> None:
    draft = "def add(a, b):\n    pass\n"
    text = f"I should add them.\n{fenced(draft)}</think>\n\n{fenced(ADD)}"
    assert extract_code(text, "add").code == ADD


def test_unclosed_think_has_no_code() -> None:
    text = f"<think>\nLet me write it.\n{fenced(ADD)}Now I need to check the edge cas"
    assert extract_code(text, "add") == Extraction("", "none")


# --- no fences -------------------------------------------------------------------------------


def test_prose_around_unfenced_code() -> None:
    text = f"Sure! Here is the function:\n\n{ADD}\nprint(add(1, 2))\n\nHope this helps."
    assert extract_code(text, "add") == Extraction(f"{ADD}\nprint(add(1, 2))\n", "ast")


def test_unfenced_code_prefers_the_entry_point() -> None:
    helper = (
        "def helper(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total\n"
    )
    text = f"A helper first:\n{helper}\nThat was long. Now the answer:\n{ADD}\nDone."
    assert extract_code(text, "add") == Extraction(ADD, "ast")
    assert extract_code(text).code == helper


def test_unfenced_truncated_code_keeps_what_parses() -> None:
    text = f"Here it is:\n{ADD}\ndef sub(a, b):\n    return [a,"
    assert extract_code(text, "add") == Extraction(ADD, "ast")


def test_indented_unfenced_code_is_dedented() -> None:
    text = "Code:\n\n    def add(a, b):\n        return a + b\n\nThat is all."
    assert extract_code(text, "add") == Extraction(ADD, "ast")


def test_whole_script_is_raw() -> None:
    script = "import sys\n\nprint(sum(map(int, sys.stdin.read().split())))\n"
    assert extract_code(f"\n{script}\n\n") == Extraction(script, "raw")


@pytest.mark.parametrize(
    "text", ["", "   \n\n", "Sorry", "I cannot help with that.", "x + y is the answer: it's simple"]
)
def test_nothing_usable(text: str) -> None:
    assert extract_code(text, "add") == Extraction("", "none")


# --- robustness ------------------------------------------------------------------------------

_PIECES = st.sampled_from(
    [
        "```",
        "```python\n",
        "~~~\n",
        "\n",
        "\r\n",
        "<think>",
        "</think>",
        "def f(x):\n",
        "    return x\n",
        "class A:\n",
        "Some prose.\n",
        "  ",
        "f = 1\n",
        "(",
        "\x00",
        "'''",
    ]
)
_ANSWERS = st.one_of(st.text(), st.lists(_PIECES | st.text(max_size=5), max_size=40).map("".join))


@settings(max_examples=400)
@given(_ANSWERS, st.sampled_from([None, "f", "A", ""]))
def test_never_raises_and_code_comes_from_the_text(text: str, entry_point: str | None) -> None:
    result = extract_code(text, entry_point)
    assert (result.code == "") == (result.method == "none")
    for line in result.code.split("\n"):
        assert line in text


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("text", "method", "code"),
    [
        ("word " * 20_000, "none", ""),
        ("def f():\nnot code here\n" * 4_000, "none", ""),
        # Code without a def or class, then prose: not Python as a whole, no def to anchor on.
        ("x = 1\n" * 16_000 + "The end.", "none", ""),
        (f"{fenced(ADD)}prose\n" * 2_000, "fenced", ADD),
        ("(" * 100_000, "none", ""),
        ("```\n" * 25_000, "none", ""),
        ("<think>" * 14_000, "none", ""),
        ("```python" + " " * 100_000 + "x\n", "none", ""),
    ],
    ids=[
        "prose",
        "many-anchors",
        "long-code",
        "many-blocks",
        "deep",
        "many-fences",
        "unclosed-thinks",
        "blank-info",
    ],
)
def test_large_inputs_finish(text: str, method: str, code: str) -> None:
    # A hang guard against quadratic blow-up (the timeout), and the answer is still right.
    result = extract_code(text, "f")
    assert (result.method, result.code) == (method, code)


# -- sanitize: keep imports and what the entry point needs ------------------------------------

from codeduel.extract import sanitize  # noqa: E402


def test_sanitize_drops_example_calls_and_keeps_dependencies() -> None:
    code = (
        "import math\n"
        "from typing import List\n\n"
        "LIMIT = 10\n\n"
        "def helper(x):\n    return math.sqrt(x) + LIMIT\n\n"
        "def unused():\n    return 1\n\n"
        "@staticmethod\n"
        "def decorated():\n    return 2\n\n"
        "def solve(xs: List[int]):\n    return [helper(x) for x in xs] + [decorated()]\n\n"
        "print(solve([1, 4]))\n"
        "assert list_sort(['a']) == ['a']\n"
        "if __name__ == '__main__':\n    solve([])\n"
    )
    out = sanitize(code, "solve")
    assert "import math" in out and "from typing import List" in out
    assert "LIMIT = 10" in out and "def helper" in out
    assert "@staticmethod\ndef decorated" in out
    assert "def unused" not in out
    assert "print(" not in out and "list_sort" not in out and "__main__" not in out
    namespace: dict[str, object] = {}
    exec(compile(out, "<sanitized>", "exec"), namespace)
    assert callable(namespace["solve"])


def test_sanitize_leaves_code_it_cannot_anchor_alone() -> None:
    broken = "def solve(:\n    pass\nprint(1)\n"
    assert sanitize(broken, "solve") == broken
    other = "def something_else():\n    return 1\nprint(something_else())\n"
    assert sanitize(other, "solve") == other


def test_sanitize_cuts_a_tail_that_does_not_parse() -> None:
    # A token limit in the middle of example asserts (HumanEval/24 of the stored greedy run).
    cut = ADD + "\nassert add(1, 2) == 3\nassert add(2, 2) == 4\nassert add(len(range(3)"
    assert sanitize(cut, "add") == ADD
    # A comment's continuation indented after the last example call (HumanEval/113).
    stray = ADD + "\nprint(add(1, 2))  # Output: [3,\n     4]\n"
    assert sanitize(stray, "add") == ADD
    # Nothing that parses before the entry point: unchanged, for the tests to report.
    assert sanitize("def add(a, b:\n    return a\n", "add") == "def add(a, b:\n    return a\n"
