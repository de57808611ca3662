"""rnnbench: Numba-JIT reference kernels and benchmarks for recurrent neural networks."""

from . import tasks
from .cells import CELLS, DENSE, DIAGONAL, NONE, Cell, register_cell
from .jit import gate
from .model import RNN, architectures, gradient_decay
from .training import train

__all__ = [
    "CELLS",
    "DENSE",
    "DIAGONAL",
    "NONE",
    "RNN",
    "Cell",
    "architectures",
    "gate",
    "gradient_decay",
    "register_cell",
    "tasks",
    "train",
]
__version__ = "0.1.0"
