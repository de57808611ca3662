"""PyTorch's CPU RNN, LSTM and GRU beside rnnbench: the same shapes, the same weights.

Skipped where torch cannot be imported; torch keeps its default thread count.
"""

import functools
import importlib

from rnnbench.cells import CELLS
from rnnbench.compare import torch_twin

from . import common


@functools.cache
def _torch():
    """torch, imported only by the processes that time it (it weighs on peakmem_)."""
    try:
        return importlib.import_module("torch")
    except ImportError as error:
        raise NotImplementedError(f"torch cannot be imported: {error}") from error


def _module(arch: str, hidden: int):
    """The torch module with rnnbench's float32 weights for (arch, hidden) copied in."""
    _torch()  # NotImplementedError (asv: skipped) without torch
    return torch_twin(common.model(arch, "cpu", hidden))


def _zero_state(arch: str, batch: int, hidden: int):
    """h0 (and c0 for a cell with a cell state): [1,B,H] zeros whose gradients torch keeps."""
    torch = _torch()
    if CELLS[arch].has_cell_state:
        return tuple(torch.zeros(1, batch, hidden, requires_grad=True) for _ in range(2))
    return torch.zeros(1, batch, hidden, requires_grad=True)


def _numpy(state):
    if isinstance(state, tuple):
        return tuple(_numpy(part) for part in state)
    return state.detach().numpy()


def _forward(module, x):
    with _torch().inference_mode():
        return module(x)


def _train_step(module, x, state, dy):
    """Forward and backward of L = sum(dy * y); returns (y, final state)."""
    y, state_n = module(x, state)
    y.backward(dy)
    return y, state_n


class _PeerShapes:
    params = [common.TORCH_ARCHS, *common.SHAPES]
    param_names = ["arch", *common.SHAPE_NAMES]
    setup_cache = common.ShapeBenchmark.setup_cache
    timeout = 900


class TorchInference(_PeerShapes):
    def setup(self, refs, arch, seq_len, batch, hidden):
        def build():
            module = _module(arch, hidden)
            x = _torch().from_numpy(common.sequence(seq_len, batch, hidden))
            y, state = _forward(module, x)
            common.check_close(
                f"torch {arch} forward",
                common.forward_fingerprint(y.numpy(), _numpy(state)),
                refs[arch, seq_len, batch, hidden]["forward"],
            )
            return module, x

        self.module, self.x = common.once(("torch inference", arch, seq_len, batch, hidden), build)

    def time_forward(self, refs, arch, seq_len, batch, hidden):
        _forward(self.module, self.x)


class TorchTraining(_PeerShapes):
    def setup(self, refs, arch, seq_len, batch, hidden):
        def build():
            module = _module(arch, hidden)
            torch = _torch()
            x = torch.from_numpy(common.sequence(seq_len, batch, hidden)).requires_grad_()
            state = _zero_state(arch, batch, hidden)
            dy = torch.from_numpy(common.output_grad(seq_len, batch, hidden))
            y, state_n = _train_step(module, x, state, dy)
            grads = {key: value.grad.numpy() for key, value in module.named_parameters()}
            grads["input"] = x.grad.numpy()
            initial = state if isinstance(state, tuple) else (state,)
            for key, initial_state in zip(("h0", "c0")[: len(initial)], initial, strict=True):
                grads[key] = initial_state.grad.numpy()
            common.check_training(
                f"torch {arch}",
                y.detach().numpy(),
                _numpy(state_n),
                grads,
                refs[arch, seq_len, batch, hidden],
            )
            return module, x, state, dy

        self.module, self.x, self.state, self.dy = common.once(
            ("torch training", arch, seq_len, batch, hidden), build
        )

    def time_train_step(self, refs, arch, seq_len, batch, hidden):
        _train_step(self.module, self.x, self.state, self.dy)
