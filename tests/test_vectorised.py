"""The CPU gate math compiles to vector code: a check on the generated LLVM IR, not a timing.

A cell's float32 gate math runs about five times faster vectorised over hidden units
(LSTM forward: 7 ns per unit against 37), and small changes lose it silently: a float64
literal in a cell, reference counting inside the loop, too many run-time overlap checks
(see `rnnbench.jit` and `rnnbench._compat`). Compiled in a fresh process with the disk
cache off, since Numba shows no IR for functions it loaded from the cache.
"""

import os
import subprocess
import sys

import pytest
from strategies import ARCHS

PROGRAM = """
import re, sys
import numpy as np
from rnnbench.cells import CELLS
from rnnbench.cpu.loops import units
from rnnbench.jit import cpu_kernel

cell = CELLS[sys.argv[1]]
forward_units, backward_units = units(cell)
fu = cpu_kernel(lambda *args: forward_units(*args))
bu = cpu_kernel(lambda *args: backward_units(*args))
H = 4
rows, units = np.zeros(cell.gates * H, np.float32), np.zeros(H, np.float32)
saved = np.zeros(cell.saved * H, np.float32)
c = units if cell.has_cell_state else np.zeros(0, np.float32)
fu(H, rows, rows.copy(), units, c, units.copy(), c.copy(), saved, units.copy())
bu(H, saved, units, c, units.copy(), c.copy(), units.copy(), units.copy(), units.copy(),
   rows, rows.copy(), units.copy())
for name, f in (("forward", fu), ("backward", bu)):
    ir = "".join(f.inspect_llvm().values())
    print(name, len(re.findall(r"= (fadd|fsub|fmul|fdiv)[^<]*<\\d+ x float>", ir)))
"""


@pytest.mark.parametrize("arch", ARCHS)
def test_float32_gate_math_is_vectorised(arch):
    env = {**os.environ, "RNNBENCH_NO_CACHE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, arch], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    stores = dict(line.split() for line in result.stdout.splitlines())
    assert set(stores) == {"forward", "backward"}, result.stdout
    for name, count in stores.items():
        assert int(count) > 0, f"{arch} {name}_units has no vector arithmetic: not vectorised"


SCAN_PROGRAM = """
import re, sys
import numpy as np
from rnnbench.cells import CELLS
from rnnbench.cpu.scan import scan_rows
from rnnbench.jit import cpu_kernel

cell = CELLS[sys.argv[1]]
forward_row, backward_row = scan_rows(cell)
fr = cpu_kernel(lambda *args: forward_row(*args))
br = cpu_kernel(lambda *args: backward_row(*args))
H = 4
rows, units = np.zeros(cell.gates * H, np.float32), np.zeros(H, np.float32)
saved = np.zeros(cell.saved * H, np.float32)
fr(H, rows, rows.copy(), saved, units, units.copy(), units.copy())
br(H, True, saved, units, units.copy(), units.copy(), units.copy(), units.copy(), rows)
for name, f in (("forward", fr), ("backward", br)):
    ir = "".join(f.inspect_llvm().values())
    print(name, len(re.findall(r"= (fadd|fsub|fmul|fdiv)[^<]*<\\d+ x float>", ir)))
"""
SCAN_ROWS = [(arch, row) for arch in ("mingru", "minlstm") for row in ("forward", "backward")]


@pytest.mark.parametrize(("arch", "row"), SCAN_ROWS)
def test_float32_scan_rows_are_vectorised(arch, row):
    env = {**os.environ, "RNNBENCH_NO_CACHE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", SCAN_PROGRAM, arch], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    stores = dict(line.split() for line in result.stdout.splitlines())
    assert int(stores[row]) > 0, f"{arch} scan {row} row has no vector arithmetic"
