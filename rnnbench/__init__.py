"""rnnbench: Numba-JIT reference kernels and benchmarks for recurrent neural networks."""

from .cells import CELLS, DENSE, DIAGONAL, NONE, Cell, register_cell
from .jit import gate
from .model import RNN, architectures, gradient_decay

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
]
__version__ = "0.1.0"
