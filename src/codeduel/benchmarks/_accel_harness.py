"""The harness that checks and times one GPU answer; its source runs inside the sandbox.

`codeduel.benchmarks.accel` embeds this file's text, with the task and the answer as JSON, in
the program the executor runs: it is never imported by codeduel itself, and it imports
nothing of codeduel. It:

1. keeps its own references to every function it measures or compares with, before the
   answer's code runs (so replacing `torch.cuda.synchronize` or `time.perf_counter` changes
   nothing it uses, and is reported);
2. checks the answer at every size on fresh seeded inputs against the NumPy reference:
   device arrays out (not host arrays), no output sharing memory with an input, values within
   tolerance (max error and first bad index otherwise);
3. times it (`time` sizes): warm-up, then each call between a device-wide synchronise and a
   CUDA event recorded after the device is idle, so work left on another stream is counted;
   new values are written into the inputs before every timed call and every timed output is
   checked, so a result cached across calls fails; the median is kept;
4. measures peak GPU memory per call against the task's budget;
5. writes one report line (`CODEDUEL-ACCEL {json}`) to stdout, then raises AssertionError
   when the answer is wrong, so the sandbox's verdict says failed with the reason.
"""

import json
import os
import statistics
import time

MARK = "CODEDUEL-ACCEL"
_write = os.write
_perf_counter = time.perf_counter
_wall = time.time
_dumps = json.dumps


class _Wrong(Exception):
    """The answer is wrong at one size: the sentence says how."""


def _frameworks(name):
    import numpy as np

    if name == "torch":
        import torch

        gpu = torch.cuda.is_available()
        device = torch.device("cuda", torch.cuda.current_device()) if gpu else torch.device("cpu")
        return np, torch, gpu, device
    import cupy

    return np, cupy, True, cupy.cuda.Device()


class _Framework:
    """What the harness needs of torch or CuPy, bound once, before the answer runs."""

    def __init__(self, name):
        np, fw, gpu, device = _frameworks(name)
        self.name, self.np, self.fw, self.gpu, self.device = name, np, fw, gpu, device
        self.subtract, self.absolute, self.multiply = np.subtract, np.absolute, np.multiply
        self.add, self.less_equal, self.isnan = np.add, np.less_equal, np.isnan
        self.logical_and, self.logical_or = np.logical_and, np.logical_or
        self.asarray, self.array_type = np.asarray, np.ndarray
        if name == "torch":
            torch = fw
            self.tensor_type = torch.Tensor
            self.from_numpy = torch.from_numpy
            self.copy_ = torch.Tensor.copy_
            self.to = torch.Tensor.to
            self.to_host = torch.Tensor.numpy
            self.detach = torch.Tensor.detach
            self.cpu = torch.Tensor.cpu
            if gpu:
                self.sync = torch.cuda.synchronize
                self.Event = torch.cuda.Event
                self.record = torch.cuda.Event.record
                self.elapsed = torch.cuda.Event.elapsed_time
                self.event_sync = torch.cuda.Event.synchronize
                self.reset_peak = torch.cuda.reset_peak_memory_stats
                self.max_allocated = torch.cuda.max_memory_allocated
                self.allocated = torch.cuda.memory_allocated
                self.device_name = torch.cuda.get_device_name(device)
            else:
                self.device_name = "cpu"
        else:
            cp = fw
            self.tensor_type = cp.ndarray
            self.cp_asarray = cp.asarray
            self.cp_asnumpy = cp.asnumpy
            self.sync = cp.cuda.Device.synchronize
            self.Event = cp.cuda.Event
            self.record = cp.cuda.Event.record
            self.elapsed = cp.cuda.get_elapsed_time
            self.event_sync = cp.cuda.Event.synchronize
            self.copyto = cp.copyto
            self.device_name = cp.cuda.runtime.getDeviceProperties(device.id)["name"].decode()
            self.hook = _peak_hook(cp)
        # What checks a timed output on the device (bound now, like the rest).
        self.d_abs, self.d_sub, self.d_le = fw.abs, fw.subtract, fw.less_equal
        self.d_isnan, self.d_and, self.d_or, self.d_all = (
            fw.isnan,
            fw.logical_and,
            fw.logical_or,
            fw.all,
        )
        self.watched = self._watched()

    def _watched(self):
        """(owner, attribute, value) of what an answer might replace to fake its speed."""
        names = [(time, "perf_counter"), (time, "perf_counter_ns"), (time, "time")]
        fw = self.fw
        if self.name == "torch":
            names += [(fw.Tensor, "copy_"), (fw.Tensor, "to"), (fw, "from_numpy")]
            if self.gpu:
                names += [
                    (fw.cuda, "synchronize"),
                    (fw.cuda, "Event"),
                    (fw.cuda.Event, "record"),
                    (fw.cuda.Event, "elapsed_time"),
                    (fw.cuda.Event, "synchronize"),
                    (fw.cuda, "max_memory_allocated"),
                    (fw.cuda, "reset_peak_memory_stats"),
                ]
        else:
            names += [
                (fw.cuda.Device, "synchronize"),
                (fw.cuda, "Event"),
                (fw.cuda, "get_elapsed_time"),
                (fw, "asarray"),
                (fw, "asnumpy"),
            ]
        names += [(fw, n) for n in ("abs", "subtract", "less_equal", "isnan", "all")]
        names += [(fw, n) for n in ("logical_and", "logical_or")]
        names += [(self.np, n) for n in ("asarray", "allclose", "isclose", "subtract")]
        return [(owner, attr, getattr(owner, attr)) for owner, attr in names]

    def check_untouched(self):
        for owner, attr, value in self.watched:
            if getattr(owner, attr, None) is not value:
                what = getattr(owner, "__name__", type(owner).__name__)
                raise _Wrong(f"the answer replaced {what}.{attr}, which the harness measures with")

    def device_args(self, args):
        out = []
        for a in args:
            if isinstance(a, self.array_type):
                if self.name == "torch":
                    out.append(self.to(self.from_numpy(a.copy()), self.device))
                else:
                    out.append(self.cp_asarray(a))
            else:
                out.append(a)
        return out

    def refill(self, targets, sources):
        """Write the values of one input set into the inputs' own memory, in place."""
        for t, s in zip(targets, sources, strict=True):
            if isinstance(t, self.tensor_type):
                if self.name == "torch":
                    self.copy_(t, s)
                else:
                    self.copyto(t, s)

    def host(self, value, what):
        """A device output as a NumPy array; a host array or other type is an error."""
        if isinstance(value, self.array_type):
            raise _Wrong(f"{what} is a NumPy array on the host, not a {self.kind} on the device")
        if not isinstance(value, self.tensor_type):
            raise _Wrong(f"{what} is a {type(value).__name__}, not a {self.kind}")
        if self.name == "torch":
            if value.device != self.device:
                raise _Wrong(f"{what} is on {value.device}, not on {self.device}")
            return self.to_host(self.cpu(self.detach(value)))
        return self.cp_asnumpy(value)

    def device_want(self, want):
        """A reference output on the device, as float64 where it is floating (None: complex,
        which only the host comparison checks)."""
        if want.dtype.kind == "c":
            return None
        if want.dtype.kind == "f":
            want = want.astype(self.np.float64)
        return self.device_args([want])[0]

    def same_on_device(self, got, want, rtol, atol):
        """Whether a timed output equals the reference (on the device, one sync); False also
        where it is not a device array of the right shape: the host comparison then says how."""
        if want is None or not isinstance(got, self.tensor_type):
            return False
        if tuple(got.shape) != tuple(want.shape):
            return False
        if self.name == "torch":
            floating = want.is_floating_point()
            if floating != (got.is_floating_point() or got.is_complex()):
                return False
            g = self.to(got, want.dtype) if floating else got
        else:
            floating = want.dtype.kind == "f"
            if floating != (got.dtype.kind in "fc"):
                return False
            g = got.astype(want.dtype) if floating else got
        if floating:
            err = self.d_abs(self.d_sub(g, want))
            ok = self.d_le(err, atol + rtol * self.d_abs(want))
            ok = self.d_or(ok, self.d_and(self.d_isnan(g), self.d_isnan(want)))
        else:
            ok = g == want
        return bool(self.d_all(ok))

    @property
    def kind(self):
        return "torch tensor" if self.name == "torch" else "cupy array"

    def span(self, value):
        """(start, end) of the memory behind a device array."""
        if self.name == "torch":
            storage = value.untyped_storage()
            return storage.data_ptr(), storage.data_ptr() + storage.nbytes()
        base = value.base if value.base is not None else value
        return base.data.ptr, base.data.ptr + base.nbytes

    def synchronize(self):
        if self.gpu:
            if self.name == "torch":
                self.sync()
            else:
                self.sync(self.device)

    def timed(self, call):
        """(result, ms): the call between a device-wide synchronise and an event recorded
        after the device is idle again, so work on any stream is counted."""
        if not self.gpu:
            start = _perf_counter()
            result = call()
            return result, (_perf_counter() - start) * 1e3
        self.synchronize()
        begin, end = self._event(), self._event()
        self.record(begin)
        result = call()
        self.synchronize()
        self.record(end)
        self.event_sync(end)
        return result, self.elapsed(begin, end)

    def _event(self):
        if self.name == "torch":
            return self.Event(enable_timing=True)
        return self.Event()

    def peak_start(self):
        if not self.gpu:
            return None
        self.synchronize()
        if self.name == "torch":
            self.reset_peak(self.device)
            return self.allocated(self.device)
        self.hook.reset()
        return 0

    def peak_bytes(self, before):
        if before is None:
            return None
        self.synchronize()
        if self.name == "torch":
            return max(0, self.max_allocated(self.device) - before)
        return self.hook.peak


def _peak_hook(cp):
    from cupy.cuda import memory_hook

    # Once per process (a sample is its own; bench/accel_references.py runs many in one).
    known = memory_hook.get_memory_hooks().get("codeduel-peak")
    if known is not None:
        return known

    class Peak(memory_hook.MemoryHook):
        name = "codeduel-peak"

        def __init__(self):
            self.now = 0
            self.peak = 0
            self.sizes = {}

        def reset(self):
            self.peak = self.now

        def malloc_postprocess(self, device_id, size, mem_size, mem_ptr, pmem_id):
            self.sizes[mem_ptr] = mem_size
            self.now += mem_size
            self.peak = max(self.peak, self.now)

        def free_postprocess(self, device_id, mem_size, mem_ptr, pmem_id):
            self.now -= self.sizes.pop(mem_ptr, mem_size)

    hook = Peak()
    hook.__enter__()
    return hook


def _outputs(value):
    return list(value) if isinstance(value, tuple) else [value]


def _compare(fw, got, want, rtol, atol, label):
    """Raise `_Wrong` unless `got` matches `want` (NumPy arrays) within the tolerances."""
    np = fw.np
    if got.shape != want.shape:
        raise _Wrong(f"{label}: shape {got.shape}, expected {want.shape}")
    kinds = {"f": "float", "c": "complex", "i": "int", "u": "int", "b": "bool"}
    if kinds.get(got.dtype.kind) != kinds.get(want.dtype.kind):
        raise _Wrong(
            f"{label}: dtype {got.dtype}, expected {want.dtype.kind}-kind like {want.dtype}"
        )
    if want.dtype.kind in "fc":
        g, w = got.astype(np.float64), want.astype(np.float64)
        err = fw.absolute(fw.subtract(g, w))
        ok = fw.less_equal(err, fw.add(atol, fw.multiply(rtol, fw.absolute(w))))
        ok = fw.logical_or(ok, fw.logical_and(fw.isnan(g), fw.isnan(w)))
        worst = float(np.nanmax(err)) if err.size else 0.0
    else:
        ok = got == want
        worst = 0.0 if ok.all() else 1.0
    if not ok.all():
        index = tuple(int(i) for i in np.argwhere(~ok)[0])
        bad = int((~ok).sum())
        raise _Wrong(
            f"{label}: {bad} of {ok.size} values differ from the reference; first at index "
            f"{index} (got {got[index].tolist()!r}, expected {want[index].tolist()!r}); "
            f"max abs error {worst:.3g}"
        )
    return worst


def _check_disjoint(fw, outs, args):
    inputs = [fw.span(a) for a in args if isinstance(a, fw.tensor_type)]
    for k, out in enumerate(outs):
        if not isinstance(out, fw.tensor_type):
            continue
        start, end = fw.span(out)
        for a_start, a_end in inputs:
            if start < a_end and a_start < end:
                raise _Wrong(f"output {k} shares memory with an input (results must be new arrays)")


def _run(spec: dict) -> dict:
    report = {"framework": spec["framework"], "sizes": {}, "verdict": "passed", "detail": ""}
    report["size_order"] = list(spec["sizes"])  # the JSON store sorts the keys of "sizes"
    fw = _Framework(spec["framework"])
    report["device"] = fw.device_name
    report["gpu"] = fw.gpu
    report["numpy_threads"] = _numpy_threads()
    np = fw.np
    ref_ns, inputs_ns = {"__name__": "reference"}, {"__name__": "inputs"}
    exec(compile(spec["reference"], "<reference>", "exec"), ref_ns)
    exec(compile(spec["inputs"], "<inputs>", "exec"), inputs_ns)
    reference, make_inputs = ref_ns[spec["entry_point"]], inputs_ns["make_inputs"]
    answer_ns = {"__name__": "__main__"}
    exec(compile(spec["candidate"], "<answer>", "exec"), answer_ns)
    fw.check_untouched()
    answer = answer_ns.get(spec["entry_point"])
    if not callable(answer):
        raise _Wrong(f"the answer defines no function {spec['entry_point']}")
    rtol, atol = spec["rtol"], spec["atol"]
    budget = spec.get("memory_budget_mb")
    timed = set(spec["time"]) if fw.gpu else set()
    checked = {}  # size -> [(inputs, reference outputs)] of the checked seeds, to time on
    for size in spec["sizes"]:
        row = {"correct": False}
        report["sizes"][size] = row
        worst = 0.0
        for seed in spec["seeds"]:
            args = make_inputs(size, seed)
            want = [np.asarray(w) for w in _outputs(reference(*args))]
            if size in timed:
                checked.setdefault(size, []).append((args, want))
            dev = fw.device_args(args)
            before = fw.peak_start()
            got = _outputs(answer(*dev))
            fw.synchronize()
            peak = fw.peak_bytes(before)
            if peak is not None:
                row["peak_bytes"] = max(row.get("peak_bytes", 0), peak)
            if len(got) != len(want):
                raise _Wrong(f"{size}: {len(got)} outputs, expected {len(want)}")
            _check_disjoint(fw, got, dev)
            for k, (g, w) in enumerate(zip(got, want, strict=True)):
                label = (
                    f"{size} input (seed {seed}), output {k}"
                    if len(want) > 1
                    else (f"{size} input (seed {seed})")
                )
                worst = max(worst, _compare(fw, fw.host(g, label), w, rtol, atol, label))
            del got, dev
        row["correct"] = True
        row["max_abs_err"] = worst
        peak = row.get("peak_bytes")
        if budget is not None and peak is not None and peak > budget * 2**20:
            raise _Wrong(
                f"{size}: used {row['peak_bytes'] / 2**20:.0f} MB of GPU memory at its peak, "
                f"over the task's budget of {budget:g} MB"
            )
        fw.check_untouched()
    if timed:
        rows, report["timed_at"] = _time_sizes(fw, spec, answer, reference, checked)
        for size, row in rows.items():
            report["sizes"].setdefault(size, {}).update(row)
    return report


def _time_sizes(fw, spec, answer, reference, checked):
    """({size: timing row}, [start, end]): every `time` size prepared first, then timed while
    this sample holds the GPU's lock (the window, in wall-clock time as the other samples see
    it). Preparing outside the lock matters for CuPy, which compiles each kernel on first use:
    the device comparison's own kernels took ~5 s to compile, which the lock held before."""
    prepared = {size: _prepare(fw, spec, answer, checked[size]) for size in spec["time"]}
    fw.check_untouched()
    rows = {}
    with _gpu_lock(fw):
        start = _wall()
        for size in spec["time"]:
            rows[size] = _time(fw, spec, size, answer, reference, prepared[size])
            fw.check_untouched()
        return rows, [start, _wall()]


def _numpy_threads():
    """The threads NumPy's BLAS may use here (threadpoolctl's count where it is installed)."""
    try:
        from threadpoolctl import threadpool_info

        counts = [p.get("num_threads") for p in threadpool_info()]
        counts = [c for c in counts if isinstance(c, int)]
        if counts:
            return max(counts)
    except Exception:
        pass
    return len(os.sched_getaffinity(0))


class _gpu_lock:
    """This GPU's timing lock (`$CODEDUEL_GPU_LOCK/gpu{N}.lock`), held while timing, so only
    one sample times on a GPU at a time; nothing where the executor set none."""

    def __init__(self, fw):
        folder = os.environ.get("CODEDUEL_GPU_LOCK")
        index = fw.device.index if fw.name == "torch" else fw.device.id
        self.path = os.path.join(folder, f"gpu{index or 0}.lock") if folder else None
        self.fd = None

    def __enter__(self):
        if self.path is not None and os.path.exists(self.path):
            import fcntl

            self.fd = os.open(self.path, os.O_RDONLY)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # closing the only descriptor releases the lock
        return False


class _Prepared:
    """One size's timing inputs on the device: the sets the check used (`sets`: (inputs,
    reference outputs)), and the reference outputs on the device to compare each timed output
    with. Where every set has the same shapes, each timed call gets the next set's values
    written into the same arrays (a result cached by the arrays' identity goes stale); where
    shapes depend on the seed (a sparse matrix's nonzeros), each set is its own arrays."""

    def __init__(self, fw, sets):
        self.fw, self.sets = fw, sets
        self.sources = [fw.device_args(args) for args, _ in sets]
        self.wants = [[fw.device_want(w) for w in want] for _, want in sets]
        shapes = {tuple(getattr(a, "shape", None) for a in args) for args, _ in sets}
        self.in_place = len(shapes) == 1
        self.dev = fw.device_args(sets[0][0])

    def inputs(self, which):
        if not self.in_place:
            return self.sources[which]
        self.fw.refill(self.dev, self.sources[which])
        return self.dev


def _prepare(fw, spec, answer, sets):
    """`_Prepared` inputs, after one untimed call whose outputs go through the device
    comparison: every kernel the timing loop launches has run once."""
    prepared = _Prepared(fw, sets)
    got = _outputs(answer(*prepared.inputs(0)))
    for g, w in zip(got, prepared.wants[0], strict=False):  # a count mismatch fails later
        fw.same_on_device(g, w, spec["rtol"], spec["atol"])
    del got
    fw.synchronize()
    return prepared


def _time(fw, spec, size, answer, reference, prepared):
    """Median milliseconds of the answer (and of NumPy, when asked) at `size`, on `prepared`
    inputs; every timed output is compared with the reference on the device. At least 3
    repeats, `min_repeats` unless 2 s went by, and on to `max_repeats` within 0.3 s."""
    rtol, atol = spec["rtol"], spec["atol"]
    sets, wants, inputs = prepared.sets, prepared.wants, prepared.inputs
    min_repeats, max_repeats = spec.get("min_repeats", 10), spec.get("max_repeats", 50)
    for _ in range(spec.get("warmup", 2)):
        answer(*inputs(0))
    times = []
    spent = 0.0
    k = 0
    while (k < min_repeats and (k < 3 or spent < 2e3)) or (spent < 0.3e3 and k < max_repeats):
        which = k % len(sets)
        args = inputs(which)
        got, ms = fw.timed(lambda args=args: _outputs(answer(*args)))
        label = f"{size}, timed call {k + 1} (new values written into the inputs)"
        if len(got) != len(wants[which]):
            raise _Wrong(f"{label}: {len(got)} outputs, expected {len(wants[which])}")
        for g, w, host in zip(got, wants[which], sets[which][1], strict=True):
            if not fw.same_on_device(g, w, rtol, atol):
                _compare(fw, fw.host(g, label), host, rtol, atol, label)
        del got
        times.append(ms)
        spent += ms
        k += 1
    row = {"gpu_ms": statistics.median(times), "repeats": len(times)}
    row["in_place"] = prepared.in_place
    if spec.get("time_numpy"):
        host = []
        for _ in range(spec.get("numpy_repeats", 3)):
            start = _perf_counter()
            reference(*sets[0][0])
            host.append((_perf_counter() - start) * 1e3)
        row["numpy_ms"] = statistics.median(host)
    return row


def main(spec):
    try:
        report = _run(spec)
    except _Wrong as exc:
        report = {"framework": spec["framework"], "verdict": "failed", "detail": str(exc)}
        _emit(report)
        raise AssertionError(str(exc)) from None
    _emit(report)


def _emit(report):
    line = "\n" + MARK + " " + _dumps(report, allow_nan=False, default=str) + "\n"
    _write(1, line.encode())
