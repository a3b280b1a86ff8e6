"""LiveCodeBench's grading rules, run inside the sandbox around one answer (stdlib only).

The task's program is this file's source followed by `_lcb_main(SPEC)`. It grades as
LiveCodeBench's `lcb_runner/evaluation/testing_util.py` does, test by test, stopping at the
first failure:

- functional problems (`fn_name` set): the answer runs with LiveCodeBench's star imports
  before it; `Solution()` when the code says `class Solution`, else the module; each input
  line is one JSON argument; the result (a tuple read as a list) must `==` the JSON output;
- stdin problems: the answer's top level is wrapped in a function (its imports hoisted) and
  called with stdin, `input()`, `sys.stdin.read*` and `open()` patched to the test's input;
  stdout is compared line by line after stripping, a line that differs counting as equal
  when its whitespace-separated fields are equal as `Decimal`s;
- every test has `timeout` seconds (SIGALRM, as theirs); a wrong answer is an
  AssertionError (status "failed"), a test over its time a `TimeLimitExceeded` (read back as
  status "timeout"), anything else an error.

The answer runs in the grader's process, there as here, so two ways of faking a pass are
refused: a result whose type compares with an `__eq__` written in Python (an object equal to
everything, which LiveCodeBench's grader passes), and an answer that replaces a function of
this harness or a builtin it grades with. Honest answers get LiveCodeBench's verdicts.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import json
import signal
import sys
import types
from decimal import Decimal
from io import StringIO
from types import ModuleType
from typing import Any

IMPORTS = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\n"
    "from random import *\nfrom statistics import *\nfrom itertools import *\n"
    "from functools import *\nfrom operator import *\nfrom io import *\nfrom sys import *\n"
    "from json import *\nfrom builtins import *\nfrom typing import *\nimport string\nimport re\n"
    "import datetime\nimport collections\nimport heapq\nimport bisect\nimport copy\nimport math\n"
    "import random\nimport statistics\nimport itertools\nimport functools\nimport operator\n"
    "import io\nimport sys\nimport json\nsys.setrecursionlimit(50000)\n"
)


class TimeLimitExceeded(Exception):
    """A test ran past its time (raised by the alarm inside the answer, as theirs is)."""


class _Alarm(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Alarm("timeout occured: alarm went off")


def _short(value: object, length: int = 300) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= length else text[: length // 2] + " … " + text[-length // 2 :]


def _without_main_guard(code: str) -> str:
    """A final `if __name__ == '__main__':` block's body at the top level."""
    try:
        tree = ast.parse(code)
        last = tree.body[-1]
        if isinstance(last, ast.If) and ast.unparse(last.test).strip() == "__name__ == '__main__'":
            return ast.unparse(tree.body[:-1]) + "\n" + ast.unparse(last.body)  # type: ignore[arg-type]
    except Exception:
        pass
    return code


def _as_function(code: str) -> str:
    """The top level (imports hoisted) as the body of `wrapped_function`; code that does not
    parse is left as it is (and fails when it runs)."""
    try:
        tree = ast.parse(code)
        imports = [s for s in tree.body if isinstance(s, ast.Import | ast.ImportFrom)]
        body = [s for s in tree.body if not isinstance(s, ast.Import | ast.ImportFrom)]
        function = ast.FunctionDef(
            name="wrapped_function",
            args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
            body=body,
            decorator_list=[],
            lineno=-1,
        )
        return IMPORTS + "\n" + ast.unparse(imports) + "\n" + ast.unparse(function)  # type: ignore[arg-type]
    except Exception:
        return code


def _load(code: str, timeout: int, functional: bool) -> Any:
    signal.alarm(timeout)
    try:
        module = ModuleType("tmp_sol", "")
        exec(code, module.__dict__)
        if functional and "class Solution" in code:
            return module.Solution()
        return module
    finally:
        signal.alarm(0)


def _failed_run(index: int, exc: BaseException) -> BaseException:
    if "_alarm" in repr(exc).lower() or "timeoutexception" in repr(exc).lower():
        return TimeLimitExceeded(f"test {index + 1} ran past its time limit")
    return RuntimeError(f"test {index + 1} raised {_short(repr(exc), 200)}")


class _Untouched:
    """What grading uses, as it was before the answer ran: this module's names and the
    builtins; `check` raises where the answer replaced one of them."""

    def __init__(self) -> None:
        self.names = dict(globals())
        self.builtins = dict(vars(builtins))

    def check(self) -> None:
        here = globals()
        for name, value in self.names.items():
            if here.get(name) is not value:
                raise RuntimeError(f"the answer replaced {name}, which grading uses")
        now = vars(builtins)
        for name, value in self.builtins.items():
            if now.get(name) is not value:
                raise RuntimeError(f"the answer replaced builtins.{name}, which grading uses")


def _own_eq(value: object, depth: int = 0) -> str | None:
    """The name of a type in `value` (or in the lists, tuples, sets and dicts in it) that
    compares with an `__eq__` written in Python, or None."""
    kind = type(value)
    if isinstance(getattr(kind, "__eq__", None), types.FunctionType):
        return kind.__name__
    if depth > 100 or kind not in (list, tuple, set, frozenset, dict):
        return None
    items = [*value.keys(), *value.values()] if kind is dict else value  # type: ignore[attr-defined]
    for item in items:  # type: ignore[attr-defined]
        found = _own_eq(item, depth + 1)
        if found is not None:
            return found
    return None


def _functional(
    code: str, inputs: list[str], outputs: list[str], name: str, timeout: int, kept: _Untouched
) -> None:
    solution = _loaded(IMPORTS + "\n\n" + code, timeout, functional=True)
    kept.check()
    method = getattr(solution, name, None)
    if method is None:
        raise RuntimeError(f"the answer defines no {name}")
    arguments = [[json.loads(line) for line in text.split("\n")] for text in inputs]
    expected = [json.loads(text) for text in outputs]
    for index, (args, want) in enumerate(zip(arguments, expected, strict=False)):
        signal.alarm(timeout)
        try:
            got = method(*args)
            signal.alarm(0)
            if isinstance(got, tuple):
                got = list(got)
            faked = _own_eq(got)
            same = faked is None and bool(got == want)
        except Exception as exc:
            signal.alarm(0)
            raise _failed_run(index, exc) from None
        finally:
            signal.alarm(0)
        kept.check()
        if faked is not None:
            raise AssertionError(
                f"wrong answer on test {index + 1}: the result is a {faked}, which compares "
                "by its own __eq__"
            )
        if not same:
            raise AssertionError(
                f"wrong answer on test {index + 1}: got {_short(got)}, expected {_short(want)}"
            )


def _loaded(code: str, timeout: int, functional: bool) -> Any:
    """The answer run once; whatever stops it there (even an assert or its time) is an error
    before the tests, as their runner counts it."""
    try:
        return _load(code, timeout, functional)
    except Exception as exc:
        raise RuntimeError(
            f"the answer failed before its tests: {_short(repr(exc), 200)}"
        ) from None


def _call_with_stdin(function: Any, text: str) -> None:
    from unittest.mock import mock_open, patch

    lines = iter(text.split("\n"))

    @patch("builtins.open", mock_open(read_data=text))
    @patch("sys.stdin", StringIO(text))
    @patch("sys.stdin.readline", lambda *args: next(lines))
    @patch("sys.stdin.readlines", lambda *args: text.split("\n"))
    @patch("sys.stdin.read", lambda *args: text)
    def call() -> None:
        with contextlib.suppress(SystemExit):
            function()

    call()


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(field) for field in line.split()]
    except Exception:
        return None


def _same_output(got: str, want: str) -> str | None:
    """None when `got` passes for `want`; else why not."""
    got_lines, want_lines = _lines(got), _lines(want)
    if len(got_lines) != len(want_lines):
        return f"{len(got_lines)} output lines, expected {len(want_lines)}"
    for number, (mine, theirs) in enumerate(zip(got_lines, want_lines, strict=True), start=1):
        if mine == theirs:
            continue
        a, b = _decimals(mine), _decimals(theirs)
        if a is None or b is None or a != b:
            return f"line {number} is {_short(mine, 120)!r}, expected {_short(theirs, 120)!r}"
    return None


def _stdin(
    code: str, inputs: list[str], outputs: list[str], timeout: int, kept: _Untouched
) -> None:
    module = _loaded(_as_function(_without_main_guard(code)), timeout, functional=False)
    kept.check()
    function = getattr(module, "wrapped_function", None)
    if function is None:
        raise RuntimeError("the answer could not be wrapped to read stdin")
    for index, (given, want) in enumerate(zip(inputs, outputs, strict=False)):
        real_stdout = sys.stdout
        captured = sys.stdout = StringIO()
        signal.alarm(timeout)
        try:
            _call_with_stdin(function, given)
            signal.alarm(0)
        except Exception as exc:
            signal.alarm(0)
            raise _failed_run(index, exc) from None
        finally:
            signal.alarm(0)
            sys.stdout = real_stdout
        kept.check()
        problem = _same_output(captured.getvalue(), want)
        if problem is not None:
            raise AssertionError(f"wrong answer on test {index + 1}: {problem}")


def _lcb_main(spec: dict[str, Any]) -> None:
    signal.signal(signal.SIGALRM, _alarm)
    code, inputs, outputs = spec["code"], spec["inputs"], spec["outputs"]
    timeout = int(spec["timeout"])
    kept = _Untouched()
    if spec["fn_name"] is None:
        _stdin(code, inputs, outputs, timeout, kept)
    else:
        _functional(code, inputs, outputs, spec["fn_name"], timeout, kept)
