"""`extract_middle`: a FIM call's middle as generated, and a chat answer's middle out of its
code block, without the prefix or suffix it repeats."""

from __future__ import annotations

from codeduel.extract import extract_middle

PREFIX = 'def f(xs):\n    """Sum."""\n    total = 0\n'
SUFFIX = "    return total\n"
MIDDLE = "    for x in xs:\n        total += x\n"


def test_a_fim_calls_answer_is_taken_as_it_is() -> None:
    found = extract_middle(MIDDLE + "garbage", PREFIX, SUFFIX, chat=False)
    assert (found.code, found.method) == (MIDDLE + "garbage", "infill")


def test_a_stop_at_the_end_of_a_line_gives_its_newline_back() -> None:
    line = "    total = sum(xs)"
    assert extract_middle(
        line, PREFIX, SUFFIX, chat=False, stopped=True, whole_lines=True
    ).code == (line + "\n")
    # Cut by the token limit the line may be unfinished: nothing is added.
    assert extract_middle(line, PREFIX, SUFFIX, chat=False, whole_lines=True).code == line
    # A span that ends inside a line gets no newline.
    assert extract_middle("tot", PREFIX, SUFFIX, chat=False, stopped=True).code == "tot"


def test_a_chat_answers_code_block_is_the_middle_with_its_indentation() -> None:
    answer = f"Here is the missing code:\n```python\n{MIDDLE}```\nIt adds each number."
    found = extract_middle(answer, PREFIX, SUFFIX, chat=True, whole_lines=True)
    assert (found.code, found.method) == (MIDDLE, "infill_chat")


def test_a_prefilled_fence_and_an_unclosed_block_are_read() -> None:
    prefilled = extract_middle(
        MIDDLE, PREFIX, SUFFIX, chat=True, prefill="```python\n", whole_lines=True
    )
    assert prefilled.code == MIDDLE
    unclosed = f"```python\n{MIDDLE}\n\n"
    assert extract_middle(unclosed, PREFIX, SUFFIX, chat=True, whole_lines=True).code == MIDDLE


def test_the_prefix_and_suffix_a_chat_answer_repeats_are_cut() -> None:
    whole = f"```python\n{PREFIX}{MIDDLE}{SUFFIX}```"
    assert extract_middle(whole, PREFIX, SUFFIX, chat=True, whole_lines=True).code == MIDDLE
    # Only the last line before the hole and the first after it, repeated as context.
    context = f"```python\n    total = 0\n{MIDDLE}    return total\n```"
    assert extract_middle(context, PREFIX, SUFFIX, chat=True, whole_lines=True).code == MIDDLE


def test_a_line_that_only_looks_like_the_suffix_is_kept() -> None:
    # `    return` is the suffix's start but not one of its whole lines.
    answer = "```python\n    for x in xs:\n        total += x\n    return\n```"
    code = extract_middle(answer, PREFIX, SUFFIX, chat=True, whole_lines=True).code
    assert code.endswith("    return\n")


def test_a_chat_answer_without_a_block_is_its_text_and_a_span_drops_the_blocks_newline() -> None:
    assert extract_middle(MIDDLE, PREFIX, SUFFIX, chat=True, whole_lines=True).code == MIDDLE
    # A random span ending mid-line: `tot` + `al += x` in the suffix.
    found = extract_middle("```python\ntot\n```", "    ", "al += x\n", chat=True)
    assert found.code == "tot"


def test_a_middle_whose_last_line_ends_with_the_suffixs_text_is_kept() -> None:
    """HumanEval/92's line 4 is `        return False` before the suffix `    return False`:
    the middle ends with the suffix's text, but not from a line's start, so nothing of it
    repeats the code after the hole (the cut took it down to its indentation)."""
    prefix, suffix = "def f(x):\n    if x:\n", "    return False\n"
    answer = "```python\n        return False\n```"
    found = extract_middle(answer, prefix, suffix, chat=True, whole_lines=True)
    assert found.code == "        return False\n"
    # Written again from a line's start, the suffix is still cut.
    again = "```python\n        return True\n    return False\n```"
    cut = extract_middle(again, prefix, suffix, chat=True, whole_lines=True)
    assert cut.code == "        return True\n"
