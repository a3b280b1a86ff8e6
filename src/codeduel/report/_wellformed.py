"""Format failures (aider's "well-formed responses"): answers with no code in them, code that
does not parse, or code that does not define the function the task asks for.

Each answer is read as it was written (its prefill and the fence a stop consumed put back) and
its code found as the run found it; the code is judged before sanitizing, which would cut a
broken tail away. Reports show the figure only for runs that record it (`FIGURE` in the run's
provenance, set for runs started since it exists), so reports of older runs stay as they were.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from typing import Any

from codeduel.extract import extract_code, whole_answer

__all__ = ["FIGURE", "FormatFailures", "answer_form", "format_failures"]

FIGURE = "format_failures"
"""The name a run's provenance lists under `figures` when its report shows this figure."""


@dataclass(frozen=True)
class FormatFailures:
    answers: int
    no_code: int
    syntax_error: int
    wrong_name: int

    @property
    def well_formed(self) -> int:
        return self.answers - self.no_code - self.syntax_error - self.wrong_name

    @property
    def failure_share(self) -> float | None:
        return 1 - self.well_formed / self.answers if self.answers else None


def answer_form(text: str, entry_point: str, prefill: str = "", stopped: bool = False) -> str:
    """`ok`, or why the answer is not well-formed: `no_code`, `syntax_error`, `wrong_name`."""
    extraction = extract_code(whole_answer(text, prefill, stopped), entry_point)
    if extraction.method == "none" or not extraction.code.strip():
        return "no_code"
    try:
        tree = ast.parse(extraction.code)
    except (SyntaxError, ValueError):
        return "syntax_error"
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return "ok" if entry_point in names else "wrong_name"


_ANSWERS = """
SELECT c.response, c.config, c.finish_reason, t.entry_point
FROM model_calls c JOIN attempts a ON a.id = c.attempt_id JOIN samples s ON s.id = a.sample_id
JOIN tasks t ON t.run_id = s.run_id AND t.task_id = s.task_id
WHERE s.run_id = ? AND s.model = ? AND s.strategy = ? AND s.model_error = 0
    AND c.error IS NULL AND a.extract_method NOT LIKE 'infill%'
"""


def format_failures(db: Any, key: tuple[Any, ...]) -> FormatFailures:
    """Every answer of the system (`key`: run id, model, strategy), one at a time."""
    counts = {"ok": 0, "no_code": 0, "syntax_error": 0, "wrong_name": 0}
    for response, config, finish, entry_point in db.execute(_ANSWERS, key):
        prefill = json.loads(config or "{}").get("prefill", "")
        counts[answer_form(response, entry_point, prefill, finish == "stop")] += 1
    return FormatFailures(
        sum(counts.values()), counts["no_code"], counts["syntax_error"], counts["wrong_name"]
    )
