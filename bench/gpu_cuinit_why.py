"""Why cuInit fails in a sample: what the sample sees of itself, then cuInit before and after
making the process dumpable again (credentials changed by the sandbox clear that flag, and
the driver reads /proc/self, which a non-dumpable process cannot)."""

from __future__ import annotations

import os
from dataclasses import replace

from codeduel.sandbox import Limits, Sandbox
from codeduel.sandbox._protocol import DISABLE_ENV

PROGRAM = """\
import ctypes, os
libc = ctypes.CDLL(None)
PR_GET_DUMPABLE, PR_SET_DUMPABLE = 3, 4
print("pid", os.getpid(), "self", os.readlink("/proc/self"), "uid", os.getuid(),
      "dumpable", libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))
for path in ("/proc/self/maps", "/proc/self/status", "/proc/self/cmdline", "/proc/self/environ"):
    try:
        open(path).read(64); print(path, "readable")
    except OSError as exc:
        print(path, exc)
if os.environ.get("FIX") == "1":
    print("set dumpable:", libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
print("cuInit", ctypes.CDLL("libcuda.so.1").cuInit(0))
"""
LIMITS = replace(Limits(), memory_mb=None, processes=1024, open_files=1024, cpu_s=600)

for fix in ("0", "1"):
    os.environ.pop(DISABLE_ENV, None)
    program = PROGRAM.replace('os.environ.get("FIX")', repr(fix))
    with Sandbox(workers=1, limits=LIMITS, allow_unsafe=True, gpu=True) as box:
        result = box.run(program, 60.0)
    print(
        f"--- dumpable fix {fix}: {result.status} {result.detail}\n{result.stdout}{result.stderr}"
    )
