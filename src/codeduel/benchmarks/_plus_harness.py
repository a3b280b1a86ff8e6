"""EvalPlus's grader, run inside codeduel's sandbox: its source is embedded in every hidden
program of a `humaneval+` or `mbpp+` task (`benchmarks/plus.py`), never imported by codeduel.

It does what `evalplus.evaluate.check_correctness` does with the CLI's defaults (EvalPlus 0.3.1,
`fast_check`): the reference solution runs on deep copies of the inputs, timed per input, to
give the expected outputs (`trusted_exec`); then the answer runs on the base inputs and on the
plus inputs, each in a fresh forked process with EvalPlus's `reliability_guard`, every input
under its own limit, max(1 s, 4 × the reference's time on it), and the whole phase under
min(60 s, the sum of those) + 2 s (`untrusted_check`). Outputs are compared as EvalPlus's
`unsafe_execute` compares them: exact, or within `atol` for floats, and its special oracles.

The one difference: on `find_zero` (HumanEval/32) EvalPlus 0.3.1 never records a pass, so it
fails every answer; this harness records it, as EvalPlus's repository has since fixed it.

The answer runs only in the forked children, which close every inherited descriptor but their
progress pipe, so the verdict pipe of the sandbox stays out of its reach. The verdict: the
program ends normally when base and plus both pass, and otherwise raises `AssertionError`
with `MARK base=STATUS plus=STATUS`, which codeduel reads back as the attempt's two verdicts.
"""

import contextlib
import copy
import io
import json
import math
import os
import select
import signal
import sys
import tempfile
import time

MARK = "CODEDUEL-EVALPLUS"
MIN_TIME_LIMIT = 1.0
TIME_LIMIT_FACTOR = 4.0
TIMEOUT_PER_TASK = 60.0

MBPP_OUTPUT_NOT_NONE_TASKS = ["check_str", "text_match_three", "text_starta_endb"]
MBPP_OUTPUT_SET_EQ_TASKS = [
    "similar_elements",
    "find_char_long",
    "common_in_nested_lists",
    "extract_singly",
    "larg_nnum",
    "intersection_array",
    "find_dissimilar",
    "Diff",
]


def _surface_Area(base_edge, height):
    slant_height = math.sqrt((base_edge / 2) ** 2 + height**2)
    base_area = base_edge**2
    lateral_area = 4 * (base_edge * slant_height) / 2
    return round(base_area + lateral_area)


def _digit_distance_nums(num1, num2):
    a, b = str(num1), str(num2)
    width = max(len(a), len(b))
    a, b = a.zfill(width), b.zfill(width)
    return sum(abs(int(x) - int(y)) for x, y in zip(a, b, strict=True))


def _poly(xs, x):
    return sum([coeff * math.pow(x, i) for i, coeff in enumerate(xs)])


def _tuples(value):
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    return value


def mbpp_deserialize_inputs(task_id, inputs):
    """MBPP+ stores tuples, sets and complex numbers as JSON lists and strings; these are the
    tasks EvalPlus converts back (`evalplus.data.mbpp.mbpp_deserialize_inputs`)."""
    number = int(task_id.split("/")[-1])
    if number in (2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596,
                  616, 630, 726, 740, 744, 809):  # fmt: skip
        return [[tuple(lst) for lst in inp] for inp in inputs]
    if number in (63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780):
        return [[[tuple(lst) for lst in lst_lst] for lst_lst in inp] for inp in inputs]
    if number in (75, 413, 444, 753):
        return [[[tuple(lst) for lst in inp[0]], inp[1]] for inp in inputs]
    if number in (106, 750):
        return [[inp[0], tuple(inp[1])] for inp in inputs]
    if number == 115:
        return [
            [[set(item) if isinstance(item, list) and len(item) else {} for item in inp[0]]]
            for inp in inputs
        ]
    if number == 124:
        return [(float(inp[0]), complex(inp[1])) for inp in inputs]
    if number in (250, 405, 446, 617, 720, 763, 808):
        return [[tuple(inp[0]), inp[1]] for inp in inputs]
    if number in (259, 401, 445):
        inputs = [[[tuple(lst) for lst in lst_lst] for lst_lst in inp] for inp in inputs]
        return [[tuple(lst) for lst in inp] for inp in inputs]
    if number == 278:
        inputs = [
            [[tuple(item) if isinstance(item, list) else item for item in inp[0]]] for inp in inputs
        ]
        return [[tuple(lst) for lst in inp] for inp in inputs]
    if number == 307:
        return [[tuple(inp[0]), inp[1], inp[2]] for inp in inputs]
    if number == 722:
        return [[{k: tuple(v) for k, v in inp[0].items()}, *inp[1:]] for inp in inputs]
    if number == 252:
        return [[complex(inp[0])] for inp in inputs]
    if number in (580, 615, 791):
        return [_tuples(inp) for inp in inputs]
    return inputs


def trusted_exec(code, inputs, entry_point, output_not_none):
    """The reference's outputs and its time per input (`evalplus.gen.util.trusted_exec`)."""
    namespace = {}
    exec(code, namespace)
    fn = namespace[entry_point]
    outputs, times = [], []
    for inp in inputs:
        inp = copy.deepcopy(inp)
        start = time.time()
        outputs.append(fn(*inp))
        times.append(time.time() - start)
    if output_not_none:
        outputs = [out is not None for out in outputs]
    return outputs, times


class TimeoutException(Exception):
    pass


class _WriteOnlyStringIO(io.StringIO):
    def read(self, *args, **kwargs):
        raise OSError

    def readline(self, *args, **kwargs):
        raise OSError

    def readlines(self, *args, **kwargs):
        raise OSError

    def readable(self, *args, **kwargs):
        return False


class _redirect_stdin(contextlib._RedirectStream):
    _stream = "stdin"


@contextlib.contextmanager
def _swallow_io():
    stream = _WriteOnlyStringIO()
    with (
        contextlib.redirect_stdout(stream),
        contextlib.redirect_stderr(stream),
        _redirect_stdin(stream),
    ):
        yield


@contextlib.contextmanager
def _time_limit(seconds):
    def handler(signum, frame):
        raise TimeoutException("Timed out!")

    signal.setitimer(signal.ITIMER_REAL, seconds)
    signal.signal(signal.SIGALRM, handler)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _reliability_guard():
    """EvalPlus's guard (memory aside: the sandbox's limit stands): what it disables, an
    answer cannot use here either, so both graders fail the same answers."""
    import builtins
    import faulthandler
    import shutil
    import subprocess

    faulthandler.disable()
    builtins.exit = None
    builtins.quit = None
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir",
                 "setuid", "fork", "forkpty", "killpg", "rename", "renames", "truncate",
                 "replace", "unlink", "fchmod", "fchown", "chmod", "chown", "chroot", "lchflags",
                 "lchmod", "lchown", "getcwd", "chdir"):  # fmt: skip
        setattr(os, name, None)
    builtins.open = None
    shutil.rmtree = None
    shutil.move = None
    shutil.chown = None
    subprocess.Popen = None
    builtins.help = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None


def is_floats(x):
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(i, float) for i in x)
    np = sys.modules.get("numpy")
    if np is not None and isinstance(x, np.ndarray):
        return x.dtype == np.float64 or x.dtype == np.float32
    return False


def _run_inputs(dataset, entry_point, code, inputs, expected, limits, atol, progress):
    """`evalplus.eval.unsafe_execute` with fast_check: b"1" or b"0" per input, then b"S"."""
    exec_globals = {}
    with _swallow_io():
        exec(code, exec_globals)
        fn = exec_globals[entry_point]
    for i, inp in enumerate(inputs):
        try:
            with _time_limit(limits[i]), _swallow_io():
                out = fn(*inp)
            exp = expected[i]
            exact_match = out == exp
            if dataset == "mbpp":
                if entry_point == "are_equivalent":
                    exact_match = exact_match or True
                elif entry_point == "sum_div":
                    exact_match = exact_match or out == 0
                elif entry_point == "surface_Area":
                    exact_match = exact_match or abs(out - _surface_Area(*inp)) <= atol
                elif entry_point == "digit_distance_nums":
                    exact_match = exact_match or out == _digit_distance_nums(*inp)
                elif entry_point in MBPP_OUTPUT_SET_EQ_TASKS:
                    exact_match = set(out) == set(exp)
                elif entry_point in MBPP_OUTPUT_NOT_NONE_TASKS:
                    # exp is whether the reference's output was not None.
                    exact_match = out == exp if isinstance(out, bool) else exp == (out is not None)
            if dataset == "humaneval" and entry_point == "find_zero":
                assert abs(_poly(*inp, out)) <= atol
                os.write(progress, b"1")
                continue
            # As in EvalPlus, the tolerance a float output sets stays for the later inputs.
            if atol == 0 and is_floats(exp):
                atol = 1e-6
            if not exact_match and atol != 0:
                import numpy as np

                assert type(out) == type(exp)  # noqa: E721
                if isinstance(exp, (list, tuple)):
                    assert len(out) == len(exp)
                assert np.allclose(out, exp, rtol=1e-07, atol=atol)
            else:
                assert exact_match
        except BaseException:
            os.write(progress, b"0")
            raise
        os.write(progress, b"1")
    os.write(progress, b"S")


def _child(dataset, entry_point, code, inputs, expected, limits, atol, progress):
    try:
        os.closerange(3, progress)
        os.closerange(progress + 1, 1 << 16)
        os.chdir(tempfile.mkdtemp())
        _reliability_guard()
        _run_inputs(dataset, entry_point, code, inputs, expected, limits, atol, progress)
    except BaseException:
        with contextlib.suppress(BaseException):
            os.write(progress, b"F")
    finally:
        os._exit(0)


def untrusted_check(dataset, code, inputs, entry_point, expected, atol, ref_time):
    """`evalplus.eval.untrusted_check`: "pass", "fail" or "timeout", and the inputs run."""
    limits = [max(MIN_TIME_LIMIT, TIME_LIMIT_FACTOR * t) for t in ref_time]
    # EvalPlus joins its process for min(60, sum of limits) + 1, plus 1 more, then kills it.
    deadline = time.monotonic() + min(TIMEOUT_PER_TASK, sum(limits)) + 2
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        _child(dataset, entry_point, code, inputs, expected, limits, atol, write)
    os.close(write)
    received = b""
    while not received.endswith((b"S", b"F")):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([read], [], [], left)[0]:
            break
        chunk = os.read(read, 65536)
        if not chunk:
            break
        received += chunk
    os.close(read)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    details = [c == ord("1") for c in received.rstrip(b"SF")]
    if received.endswith(b"F"):
        return "fail", details
    if not received.endswith(b"S"):
        # Killed at the deadline, crashed or exited early: EvalPlus's status is still unknown
        # then, which it reports as a timeout.
        return "timeout", details
    if len(details) != len(inputs) or not all(details):
        return "fail", details
    return "pass", details


def main(payload):
    task = json.loads(payload)
    dataset = task["dataset"]
    entry_point = task["entry_point"]
    phases = {}
    for phase in ("base", "plus"):
        inputs = task[phase]
        if dataset == "mbpp":
            inputs = mbpp_deserialize_inputs(task["task_id"], inputs)
        expected, times = trusted_exec(
            task["reference"],
            inputs,
            entry_point,
            dataset == "mbpp" and entry_point in MBPP_OUTPUT_NOT_NONE_TASKS,
        )
        phases[phase] = (inputs, expected, times)
    if any(is_floats(e) for _, expected, _ in phases.values() for e in expected) or task["atol"]:
        # Loaded before the guard, as EvalPlus has it loaded: `np.allclose` needs it.
        import numpy  # noqa: F401
    verdicts = {}
    for phase, (inputs, expected, times) in phases.items():
        status, details = untrusted_check(
            dataset, task["solution"], inputs, entry_point, expected, task["atol"], times
        )
        verdicts[phase] = status
        if status != "pass":
            verdicts[f"{phase}_run"] = len(details)
    if verdicts["base"] == verdicts["plus"] == "pass":
        return
    where = "; ".join(
        f"{phase}: {verdicts[f'{phase}_run']} of {len(phases[phase][0])} inputs run"
        for phase in ("base", "plus")
        if verdicts[phase] != "pass"
    )
    raise AssertionError(f"{MARK} base={verdicts['base']} plus={verdicts['plus']} ({where})")
