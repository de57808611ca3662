"""Time to the first result in a fresh process that compiles every kernel it calls.

What a numba user pays before the first forward: interpreter, imports and the JIT
compile, with rnnbench's disk cache off (RNNBENCH_NO_CACHE=1).
"""

import io
import os
import subprocess
import sys

import numpy as np

import rnnbench

from . import common

SEQ_LEN, BATCH, HIDDEN = (values[0] for values in common.SHAPES)

# Reads x from stdin, writes the output y to stdout, both NumPy arrays in .npy format.
PROGRAM = """
import io
import sys
import numpy as np
import rnnbench
x = np.load(io.BytesIO(sys.stdin.buffer.read()))
y, _ = rnnbench.RNN({arch!r}, {hidden}, {hidden}, backend={backend!r}, seed={seed}).forward(x)
np.save(sys.stdout.buffer, y)
"""


def first_result(command: list[str], x: bytes) -> np.ndarray:
    """Run `command` in a fresh process with the disk cache off; its y: [T,B,H].

    The process imports the rnnbench that this one imported.
    """
    package_root = os.path.dirname(os.path.dirname(rnnbench.__file__))
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, RNNBENCH_NO_CACHE="1", PYTHONPATH=path)
    done = subprocess.run(command, input=x, capture_output=True, env=env)
    if done.returncode:
        raise RuntimeError(f"the first-call process failed:\n{done.stderr.decode()}")
    return np.load(io.BytesIO(done.stdout))


class FirstCall:
    params = [common.ARCHS, common.BACKENDS]
    param_names = ["arch", "backend"]
    setup_cache = common.ShapeBenchmark.setup_cache
    number = 1
    repeat = (1, 3, 60.0)
    warmup_time = 0
    timeout = 900

    def setup(self, refs, arch, backend):
        common.model(arch, backend, HIDDEN)  # NotImplementedError where it cannot run
        program = PROGRAM.format(arch=arch, hidden=HIDDEN, backend=backend, seed=common.SEED)
        self.command = [sys.executable, "-c", program]
        buffer = io.BytesIO()
        np.save(buffer, common.sequence(SEQ_LEN, BATCH, HIDDEN))
        self.x = buffer.getvalue()

        def check():
            y = first_result(self.command, self.x)
            reference = refs[arch, SEQ_LEN, BATCH, HIDDEN]["forward"]["output"]
            common.check_close(
                f"{arch} {backend} first result",
                {"output": common.fingerprint(y)},
                {"output": reference},
            )

        common.once(("first call", arch, backend), check)

    def time_first_result(self, refs, arch, backend):
        first_result(self.command, self.x)
