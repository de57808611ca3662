"""`RNN`, the public face of rnnbench: argument checks, parameters, layers and directions.

The backends (`rnnbench.cpu`, `rnnbench.cuda`) walk one layer-direction
through time; this module stacks them and checks everything first, since
compiled kernels do not check bounds.
"""

import importlib
import math
import numbers
import sys
import threading
from typing import NamedTuple

import numpy as np

from . import memory
from .backend import Tape, final_state
from .cells import CELLS

BACKENDS = ("cpu", "cuda")
DTYPES = (np.float32, np.float64)
# Bytes of buffers a grad=False forward walks time in (see `RNN.forward`): a
# sequence whose buffers fit runs in one chunk, as with grad=True; longer ones in
# chunks of this size, each a few milliseconds of work, so the chunks cost nothing
# measurable.
INFERENCE_CHUNK_BYTES = 16 * 2**20


def architectures() -> list[str]:
    """Names of every implemented architecture, in a stable order."""
    return list(CELLS)


def _positive_int(name: str, value, minimum: int = 1) -> int:
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {what}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be {what}, got {value}")
    return int(value)


def _load_backend(backend):
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    module = importlib.import_module(f"rnnbench.{backend}")
    module.check_available()
    return module


def _check_array(name: str, a, shape: tuple, dtype):
    """Raise unless `a` is an array of exactly this shape and dtype."""
    if not (hasattr(a, "shape") and hasattr(a, "dtype")):
        raise TypeError(f"{name} must be an array of shape {shape}, got {type(a).__name__}")
    try:
        same_dtype = np.dtype(a.dtype) == dtype
    except TypeError:  # not a NumPy dtype, say a torch tensor's
        same_dtype = False
    if not same_dtype:
        raise TypeError(f"{name} must have dtype {dtype.name} (the model's), got {a.dtype}")
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(a.shape)}")


class _Forward(NamedTuple):
    """What a forward keeps for the backward of its thread, none of it the caller's."""

    tapes: list[Tape] | None  # one per layer-direction, layer-major; None without grad
    params: dict  # the backend's parameters the forward ran with (copies with grad)
    host_io: bool  # x was a NumPy array, so results go back as NumPy arrays


class RNN:
    """A stack of recurrent layers, PyTorch's conventions, Numba kernels.

    x: [T,B,I] time-major; y: [T,B,D*H]; h0, c0: [L*D,B,H]. Parameters are
    keyed like the matching torch module's state_dict. Raises ValueError or
    TypeError naming the argument for any invalid input. Each thread's `backward`
    pairs with that thread's most recent `forward`.
    """

    def __init__(
        self,
        arch: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dtype=np.float32,
        backend: str = "cpu",
        seed: int = 0,
        parallel_scan: bool | None = None,
    ):
        if arch not in CELLS:
            raise ValueError(f"arch must be one of {architectures()}, got {arch!r}")
        self.arch = arch
        self.cell = CELLS[arch]
        self.input_size = _positive_int("input_size", input_size)
        self.hidden_size = _positive_int("hidden_size", hidden_size)
        self.num_layers = _positive_int("num_layers", num_layers)
        if not isinstance(bidirectional, bool | np.bool_):
            raise TypeError(f"bidirectional must be a bool, got {bidirectional!r}")
        self.bidirectional = bool(bidirectional)
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
        if self.dtype not in DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        self.backend = _load_backend(backend)
        if parallel_scan is None:
            parallel_scan = self.cell.scan is not None
        if not isinstance(parallel_scan, bool | np.bool_):
            raise TypeError(f"parallel_scan must be a bool or None, got {parallel_scan!r}")
        if parallel_scan and self.cell.scan is None:
            raise ValueError(
                f"parallel_scan=True needs a cell with a parallel-scan form; {arch!r} has "
                f"none (those with one: {[a for a, c in CELLS.items() if c.scan is not None]})"
            )
        self.parallel_scan = bool(parallel_scan)
        self.seed = _positive_int("seed", seed, minimum=0)
        self._shapes = self._param_shapes()
        rng = np.random.default_rng(seed)
        bound = 1.0 / math.sqrt(self.hidden_size)
        self._params = {
            key: rng.uniform(-bound, bound, shape).astype(self.dtype)
            for key, shape in self._shapes.items()
        }
        self._last = threading.local()  # .forward: this thread's most recent _Forward

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _layer_keys(self, layer: int, direction: int) -> dict[str, str]:
        suffix = "_reverse" if direction else ""
        return {name: f"{name}_l{layer}{suffix}" for name in self.cell.param_shapes(1, 1)}

    def _param_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {}
        for layer in range(self.num_layers):
            size = self.input_size if layer == 0 else self.hidden_size * self.directions
            for direction in range(self.directions):
                keys = self._layer_keys(layer, direction)
                for name, shape in self.cell.param_shapes(size, self.hidden_size).items():
                    shapes[keys[name]] = shape
        return shapes

    @property
    def params(self) -> dict:
        """Parameters keyed like torch's state_dict; arrays of the same shapes may be assigned."""
        return self._params

    @params.setter
    def params(self, new):
        if not isinstance(new, dict):
            raise TypeError(f"params must be a dict of arrays, got {type(new).__name__}")
        self._check_params(new)
        self._params = dict(new)

    def _check_params(self, params: dict):
        for key, shape in self._shapes.items():
            if key not in params:
                raise ValueError(f"params is missing {key!r} of shape {shape}")
            _check_array(f"params[{key!r}]", params[key], shape, self.dtype)
        extra = sorted(set(params) - set(self._shapes))
        if extra:
            raise ValueError(f"params has unknown keys {extra}; expected {list(self._shapes)}")

    def _layer_params(self, params: dict, layer: int, direction: int) -> dict:
        return {name: params[key] for name, key in self._layer_keys(layer, direction).items()}

    def _state_shape(self, batch: int) -> tuple[int, int, int]:
        return (self.num_layers * self.directions, batch, self.hidden_size)

    def _check_state(self, name: str, state, batch: int):
        """(h, c) arrays of shape [L*D,B,H] from `state`, zeros where None."""
        shape = self._state_shape(batch)
        if state is None:
            zeros = self.backend.zeros(shape, self.dtype)
            return zeros, (
                self.backend.zeros(shape, self.dtype) if self.cell.has_cell_state else None
            )
        if self.cell.has_cell_state:
            if not (isinstance(state, tuple) and len(state) == 2):
                raise TypeError(
                    f"{name} must be a tuple (h, c) of arrays of shape {shape} "
                    f"for {self.arch!r}, got {type(state).__name__}"
                )
            _check_array(f"{name}[0]", state[0], shape, self.dtype)
            _check_array(f"{name}[1]", state[1], shape, self.dtype)
            return self._to_backend(state[0]), self._to_backend(state[1])
        _check_array(name, state, shape, self.dtype)
        return self._to_backend(state), None

    def _to_backend(self, a):
        return self.backend.asarray(a)

    def _output(self, a, host_io: bool):
        """`a` as the caller's kind of array: NumPy when forward's x was NumPy."""
        return self.backend.to_host(a) if host_io else a

    def _check_input(self, x):
        if not (hasattr(x, "shape") and hasattr(x, "dtype")):
            raise TypeError(
                f"x must be an array of shape (T, B, {self.input_size}), got {type(x).__name__}"
            )
        if len(x.shape) != 3:
            raise ValueError(f"x must have shape (T, B, {self.input_size}), got {tuple(x.shape)}")
        T, B, _ = x.shape
        if T < 1 or B < 1:
            raise ValueError(
                f"x must have a non-empty sequence and batch, got shape "
                f"{tuple(x.shape)} (T={T}, B={B})"
            )
        _check_array("x", x, (T, B, self.input_size), self.dtype)
        return T, B

    def forward(self, x, state=None, *, grad: bool = True):
        """Run the stack over x: [T,B,I]; returns (y: [T,B,D*H], h_n or (h_n, c_n)).

        grad=True keeps what BPTT needs for this thread's next `backward`, copies
        of x and the parameters among it, so later edits of the caller's arrays
        change nothing, and raises MemoryError first if that would not fit (see
        `rnnbench.memory`); grad=False keeps nothing (inference: time is walked
        in chunks of INFERENCE_CHUNK_BYTES of buffers, so memory beyond y and the
        state does not grow with T). NumPy x gives NumPy results; device arrays
        give device arrays.
        """
        if not isinstance(grad, bool | np.bool_):
            raise TypeError(f"grad must be a bool, got {grad!r}")
        T, B = self._check_input(x)
        h0, c0 = self._check_state("state", state, B)
        self._check_params(self._params)
        # The previous forward's memory is free for this one; where it ran over the same
        # T and B, this one's tapes take its tapes' states and saved activations.
        last = getattr(self._last, "forward", None)
        self._last.forward = None
        same_shape = last is not None and last.tapes and last.tapes[0].x.shape[:2] == (T, B)
        reuse = [tape._replace(x=None) for tape in last.tapes] if grad and same_shape else []
        del last
        backend, H, D = self.backend, self.hidden_size, self.directions
        if grad:
            needed = memory.forward_nbytes(self, T, B) - sum(tape.nbytes for tape in reuse)
            memory.require(backend, f"forward (T={T}, B={B})", needed)
        params = {k: backend.asarray(v, copy=grad) for k, v in self._params.items()}
        layer_input = backend.asarray(x, copy=grad)
        tapes, h_n, c_n = [], [], []
        for layer in range(self.num_layers):
            y = backend.empty((T, B, D * H), self.dtype)  # every column is written
            for direction in range(D):
                k = layer * D + direction
                tape, h_last, c_last = self._layer_forward(
                    self._layer_params(params, layer, direction),
                    direction,
                    layer_input,
                    h0[k],
                    None if c0 is None else c0[k],
                    y,
                    grad,
                    reuse[k] if k < len(reuse) else None,
                )
                tapes.append(tape)
                h_n.append(h_last)
                c_n.append(c_last)
            layer_input = y
        host_io = isinstance(x, np.ndarray)
        self._last.forward = _Forward(tapes if grad else None, params, host_io)
        h_n = self._output(backend.stack(h_n), host_io)
        if self.cell.has_cell_state:
            return self._output(y, host_io), (h_n, self._output(backend.stack(c_n), host_io))
        return self._output(y, host_io), h_n

    def _layer_forward(
        self, params: dict, direction: int, x, h0, c0, y, grad: bool, reuse: Tape | None
    ):
        """One layer-direction (its `params`) over x: [T,B,I] into y's columns; returns
        (its tape, or None without grad, h_n, c_n). `reuse`: the tape of this
        layer-direction's previous forward in this thread, whose arrays it may take."""
        reverse = bool(direction)

        def run(t0: int, t1: int, h0, c0):
            return self.backend.layer_forward(
                self.cell, params, x[t0:t1], h0, c0, reverse, y[t0:t1],
                direction * self.hidden_size, self.parallel_scan, grad, reuse,
            )  # fmt: skip

        T = x.shape[0]
        if grad:
            tape = run(0, T, h0, c0)
            return tape, *final_state(tape, reverse)
        steps = self._inference_steps(T, x.shape[1])
        starts = range(0, T, steps)
        for t0 in reversed(starts) if reverse else starts:
            h0, c0 = final_state(run(t0, min(t0 + steps, T), h0, c0), reverse)
        return None, h0, c0

    def _inference_steps(self, T: int, batch: int) -> int:
        """Time steps per chunk of a grad=False forward over T steps: the buffers that
        grow with its steps (`Backend.tapeless_step_nbytes`) in INFERENCE_CHUNK_BYTES;
        every step in one chunk where none grows."""
        per_step = self.backend.tapeless_step_nbytes(
            self.cell, T, batch, self.hidden_size, self.dtype, self.parallel_scan
        )
        return max(1, INFERENCE_CHUNK_BYTES // per_step) if per_step else sys.maxsize

    def _last_forward(self, what: str, grad: bool = True) -> _Forward:
        """This thread's most recent forward; ValueError, saying `what` needs it, if none
        (or, with `grad`, if it ran with grad=False)."""
        last = getattr(self._last, "forward", None)
        if last is None:
            raise ValueError(
                f"{what} needs a forward first (in this thread): call model.forward(x)"
            )
        if grad and last.tapes is None:
            raise ValueError(
                f"{what} needs a forward with grad=True: the most recent forward ran with "
                "grad=False and kept nothing for BPTT"
            )
        return last

    @property
    def tape_nbytes(self) -> int:
        """Bytes this thread's most recent forward keeps for BPTT: every layer's input
        (the first layer's a copy of x), every layer-direction's states and saved gates,
        and the copy of the parameters (0 after a grad=False forward).

        Raises ValueError before the first forward.
        """
        last = self._last_forward("tape_nbytes", grad=False)
        if last.tapes is None:
            return 0
        layer_inputs = [tape.x for tape in last.tapes[:: self.directions]]  # one per layer
        return (
            sum(x.nbytes for x in layer_inputs)
            + sum(tape.nbytes for tape in last.tapes)
            + sum(a.nbytes for a in last.params.values())
        )

    def backward(self, dy, dstate=None) -> dict:
        """BPTT through this thread's most recent forward.

        dy: [T,B,D*H]; dstate like the state forward returned (zeros if None).
        Returns dL/d(every parameter), plus "input", "h0" and, for lstm, "c0".
        """
        last = self._last_forward("backward")
        backend, H, D = self.backend, self.hidden_size, self.directions
        T, B, _ = last.tapes[0].x.shape
        _check_array("dy", dy, (T, B, D * H), self.dtype)
        dh_n, dc_n = self._check_state("dstate", dstate, B)
        memory.require(backend, f"backward (T={T}, B={B})", memory.backward_nbytes(self, T, B))
        grads = {}
        dh0, dc0 = [None] * (self.num_layers * D), [None] * (self.num_layers * D)
        layer_dy = self._to_backend(dy)
        for layer in reversed(range(self.num_layers)):
            dx = backend.zeros(last.tapes[layer * D].x.shape, self.dtype)
            for direction in range(D):
                k = layer * D + direction
                keys = self._layer_keys(layer, direction)
                layer_grads, _, dh0_k, dc0[k] = backend.layer_backward(
                    self.cell,
                    self._layer_params(last.params, layer, direction),
                    last.tapes[k],
                    bool(direction),
                    layer_dy,
                    direction * H,
                    dh_n[k],
                    None if dc_n is None else dc_n[k],
                    dx,
                )
                grads.update({keys[name]: g for name, g in layer_grads.items()})
                # a copy: the view would keep the layer's dh, [T+1,B,H], alive to the end
                dh0[k] = backend.asarray(dh0_k, copy=True)
            layer_dy = dx
        grads = {key: grads[key] for key in self._shapes}
        grads["input"] = layer_dy
        grads["h0"] = backend.stack(dh0)
        if self.cell.has_cell_state:
            grads["c0"] = backend.stack(dc0)
        return {key: self._output(g, last.host_io) for key, g in grads.items()}

    def gradient_norms(self, x, state=None, u=None, *, log10: bool = False) -> np.ndarray:
        """Mean over batch rows of |dL/dh_k|, k = 0..T, for L = sum(u * h_T) of the last layer.

        x: [T,B,I]; u: [B,H], a random unit vector per row when None.
        Runs forward and the package's own BPTT (replacing the most recent
        forward). Returns float64 [T+1]; with log10=True, log10 of each entry,
        exact for any T (also far below float64's range), and -inf where the
        gradient is exactly zero. Raises ValueError if bidirectional.
        """
        if self.bidirectional:
            raise ValueError("gradient_norms needs a unidirectional model (bidirectional=False)")
        _, B = self._check_input(x)
        if u is None:
            u = np.random.default_rng(self.seed).standard_normal((B, self.hidden_size))
            u = (u / np.linalg.norm(u, axis=1, keepdims=True)).astype(self.dtype)
        _check_array("u", u, (B, self.hidden_size), self.dtype)
        self.forward(x, state)
        mantissa, exponent = self._last_layer_gradient_norms(self.backend.to_host(u))
        if not log10:
            return np.ldexp(mantissa, exponent).mean(axis=1)
        # log10 of sum_b mantissa * 2^exponent / B, summed relative to the largest exponent
        nonzero = mantissa > 0
        top = np.where(nonzero, exponent, 0).max(axis=1, initial=np.iinfo(np.int64).min)
        top = np.where(nonzero.any(axis=1), top, 0)
        total = np.ldexp(mantissa, exponent - top[:, None]).sum(axis=1)
        with np.errstate(divide="ignore"):
            return np.log10(total / B) + top * np.log10(2.0)

    def _last_layer_gradient_norms(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """|dL/dh_k| of each batch row as mantissa * 2^exponent: two [T+1,B] arrays.

        BPTT walks back through the last layer's tape in segments of
        _NORM_SEGMENT steps; before each segment each row's dL/dh (and dL/dc) is
        scaled by a power of two to a largest entry in [0.5, 1), which is exact,
        and the exponents are carried, so no norm underflows or overflows.
        """
        backend, cell, H = self.backend, self.cell, self.hidden_size
        last = self._last_forward("gradient_norms")
        tape = last.tapes[-1]
        params = self._layer_params(last.params, self.num_layers - 1, 0)
        T, B, inputs = tape.x.shape
        mantissa = np.zeros((T + 1, B))
        exponent = np.zeros((T + 1, B), np.int64)
        scale = np.zeros(B, np.int64)  # the carried rows are the true ones times 2^-scale
        dh_end = u
        dc_end = np.zeros_like(u) if cell.has_cell_state else None
        for end in range(T, 0, -_NORM_SEGMENT):
            shift = _binary_exponent(dh_end if dc_end is None else np.hstack([dh_end, dc_end]))
            dh_end = np.ldexp(dh_end, -shift).astype(self.dtype)
            dc_end = None if dc_end is None else np.ldexp(dc_end, -shift).astype(self.dtype)
            scale += shift[:, 0]
            start = max(end - _NORM_SEGMENT, 0)
            piece = tape._replace(
                x=tape.x[start:end],
                h=tape.h[start : end + 1],
                c=tape.c[start : end + 1],
                saved=tape.saved[start:end],
            )
            _, dh, dh0, dc0 = backend.layer_backward(
                cell,
                params,
                piece,
                False,
                backend.zeros((end - start, B, H), self.dtype),
                0,
                backend.asarray(dh_end),
                None if dc_end is None else backend.asarray(dc_end),
                backend.zeros((end - start, B, inputs), self.dtype),
            )
            dh = backend.to_host(dh).astype(np.float64)
            step_exponent = _binary_exponent(dh)
            mantissa[start : end + 1] = np.linalg.norm(np.ldexp(dh, -step_exponent), axis=2)
            exponent[start : end + 1] = step_exponent[..., 0] + scale
            dh_end = backend.to_host(dh0)
            dc_end = None if dc0 is None else backend.to_host(dc0)
        return mantissa, exponent


# Steps gradient_norms' BPTT takes between rescalings: safe while the norm
# changes by less than about 10^(300/16) per step (float64; 10^(37/16), float32).
_NORM_SEGMENT = 16


def _binary_exponent(a: np.ndarray) -> np.ndarray:
    """e such that max |a| over the last axis is in [2^(e-1), 2^e) (0 for all zeros), keepdims."""
    return np.frexp(np.abs(a).max(axis=-1, keepdims=True))[1].astype(np.int64)


def gradient_decay(
    arch: str,
    seq_len: int,
    hidden_size: int,
    input_size: int,
    batch: int,
    seed: int = 0,
    backend: str = "cpu",
    dtype=np.float64,
    log10: bool = False,
) -> np.ndarray:
    """`RNN.gradient_norms` of a fresh default-initialised model on standard normal x.

    Everything is drawn from `seed`. Returns float64 [seq_len + 1] (log10 of the
    norms with log10=True, exact for any seq_len).
    """
    model = RNN(arch, input_size, hidden_size, dtype=dtype, backend=backend, seed=seed)
    seq_len = _positive_int("seq_len", seq_len)
    batch = _positive_int("batch", batch)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((seq_len, batch, input_size)).astype(model.dtype)
    return model.gradient_norms(x, log10=log10)
