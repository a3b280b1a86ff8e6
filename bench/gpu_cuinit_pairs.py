"""Bisect which sandbox layers stop CUDA from starting, fast: `cuInit` through ctypes (no
framework import) in a GPU sandbox, with each probed layer and each pair of them switched off.

    python bench/gpu_cuinit_pairs.py        # on the GPU machine
"""

from __future__ import annotations

import itertools
import os
from dataclasses import replace

from codeduel.sandbox import Limits, Sandbox
from codeduel.sandbox._protocol import DISABLE_ENV
from codeduel.sandbox._worker import PROBED

CUINIT = """\
import ctypes, os
paths = ("/proc/driver/nvidia/gpus", "/sys/bus/pci", "/dev/nvidia-uvm", "/dev/nvidiactl")
seen = {p: os.path.exists(p) for p in paths}
rc = ctypes.CDLL("libcuda.so.1").cuInit(0)
print("cuInit", rc, seen, sorted(os.listdir("/dev")))
assert rc == 0, f"cuInit returned {rc}"
"""
LIMITS = replace(Limits(), memory_mb=None, processes=1024, open_files=1024, cpu_s=600)


def probe(disabled: tuple[str, ...], verbose: bool = False) -> bool:
    os.environ[DISABLE_ENV] = ",".join(disabled)
    try:
        with Sandbox(workers=1, limits=LIMITS, allow_unsafe=True, gpu=True) as box:
            result = box.run(CUINIT, 60.0)
    except Exception as exc:
        print(f"off {','.join(disabled) or '-'}: sandbox failed: {exc}", flush=True)
        return False
    ok = result.status == "passed"
    line = result.stdout.strip().splitlines()[-1:] if verbose else []
    print(
        f"off {','.join(disabled) or '-'}: {'CUDA OK' if ok else result.detail} {line}", flush=True
    )
    return ok


def main() -> None:
    probe((), verbose=True)
    everything = tuple(PROBED)
    probe(everything, verbose=True)
    for layer in PROBED:
        probe((layer,))
    for pair in itertools.combinations(PROBED, 2):
        probe(pair)


if __name__ == "__main__":
    main()
