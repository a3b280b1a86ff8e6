"""Token economy: how much of what a model generated ended in the code that was scored."""

from __future__ import annotations

__all__ = ["code_chars"]


def code_chars(answer: str, code: str) -> int:
    """Characters of the extracted `code` that the model's `answer` holds, at most its length.

    The code is not a slice of the answer: extraction dedents it and the sanitizer drops
    top-level tests and prints, so its lines are looked up in order instead. A non-blank line
    counts, indent and newline included, when its text occurs in the answer after the previous
    line found; a line the answer lacks (prefilled, or written by the sanitizer) counts nothing;
    blank lines count when a found line follows them. No code counts 0.
    """
    found = 0
    blank = 0
    start = 0
    for line in code.splitlines(keepends=True):
        text = line.strip()
        if not text:
            blank += len(line)
            continue
        at = answer.find(text, start)
        if at < 0:
            continue
        found += blank + len(line)
        blank = 0
        start = at + len(text)
    return min(found, len(answer))
