"""rnnbench: Numba-JIT reference kernels and benchmarks for recurrent neural networks."""

from .model import RNN, architectures, gradient_decay

__all__ = ["RNN", "architectures", "gradient_decay"]
__version__ = "0.1.0"
