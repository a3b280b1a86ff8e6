"""Which sandbox layers CUDA tolerates: start torch (and CuPy) on the GPU in a GPU sandbox with
all layers, then with each probed layer switched off in turn ($CODEDUEL_SANDBOX_DISABLE).

    python bench/gpu_sandbox_layers.py            # on the GPU machine

Prints, per configuration, the layers active and whether each framework's CUDA started; a
layer whose removal alone makes CUDA start is one CUDA does not tolerate.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace

from codeduel.sandbox import Limits, Sandbox
from codeduel.sandbox._protocol import DISABLE_ENV
from codeduel.sandbox._worker import PROBED

PROBES = {
    "torch": "import torch\nassert torch.cuda.is_available(), 'no CUDA'\n"
    "assert torch.ones(4, device='cuda').sum().item() == 4\n",
    "cupy": "import cupy\nassert int(cupy.ones(4).sum()) == 4\n",
}
LIMITS = replace(Limits(), memory_mb=None, processes=1024, open_files=1024, cpu_s=600)


def probe(disabled: str | None) -> bool:
    if disabled:
        os.environ[DISABLE_ENV] = disabled
    else:
        os.environ.pop(DISABLE_ENV, None)
    with Sandbox(workers=1, limits=LIMITS, allow_unsafe=True, gpu=True) as box:
        off = sorted(k for k, v in box.layers.items() if not v)
        verdicts = []
        for name, program in PROBES.items():
            result = box.run(program, 120.0)
            verdicts.append(
                f"{name}: {result.status}" + (f" ({result.detail})" if result.detail else "")
            )
    print(f"without {disabled or 'nothing'}: layers off {off}; " + "; ".join(verdicts), flush=True)
    return all(v.split(": ", 1)[1].startswith("passed") for v in verdicts)


def main() -> None:
    """With layer names: those configurations. Without: all layers on, and only if CUDA does
    not start so, each probed layer off in turn."""
    if sys.argv[1:]:
        for layer in sys.argv[1:]:
            probe(layer)
        return
    if probe(None):
        print("CUDA starts with every layer on: nothing to bisect")
        return
    for layer in PROBED:
        probe(layer)


if __name__ == "__main__":
    main()
