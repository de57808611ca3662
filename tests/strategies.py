"""Hypothesis strategies for the suite, in one place: model configurations and their arrays.

Shapes are drawn; values come from a drawn seed, bounded so that gates do not saturate.
"""

from typing import NamedTuple

import numpy as np
from hypothesis import example, settings
from hypothesis import strategies as st

import rnnbench
from rnnbench.cells import CELLS

ARCHS = rnnbench.architectures()
# The cells with a parallel-scan form (`Cell.scan`), in the registry's order.
SCAN_ARCHS = [arch for arch, cell in CELLS.items() if cell.scan is not None]
STATE_KEYS = ("h0", "c0")  # gradient keys of the state's parts, in the state's order

# Bounds of the drawn values: inputs of this size keep the pre-activations of
# default-initialised layers within a few units, where gates do not saturate and
# finite differences keep their meaning.
X_BOUND = 2.0
STATE_BOUND = 1.0
COTANGENT_BOUND = 1.0
# Multiples of the default weights: 3 drives recurrences to grow and some gates
# towards saturation, still well within float32 range for the drawn lengths.
WEIGHT_SCALES = (1.0, 0.25, 3.0)


def scaled(fraction: float) -> settings:
    """Settings running `fraction` of the active profile's max_examples (at least 1)."""
    return settings(max_examples=max(1, round(settings.default.max_examples * fraction)))


def parts(state) -> tuple:
    """The arrays of a state: (h,) or (h, c)."""
    return state if isinstance(state, tuple) else (state,)


def state_keys(state) -> tuple:
    """Gradient keys of a state's parts: ("h0",) or ("h0", "c0")."""
    return STATE_KEYS[: len(parts(state))]


def like(state, parts_):
    """Arrays `parts_` in the structure of `state`: a tuple for a tuple, else the one array."""
    return tuple(parts_) if isinstance(state, tuple) else parts_[0]


class Arrays(NamedTuple):
    """Inputs of one forward and cotangents of one backward, for one model."""

    x: np.ndarray  # [T,B,I]
    state: object  # h0: [L*D,B,H], or (h0, c0)
    dy: np.ndarray  # [T,B,D*H]
    dstate: object  # like state


class Case(NamedTuple):
    """A model configuration but its architecture, and the seed of its parameters and arrays."""

    seq_len: int
    batch: int
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    seed: int = 0
    zero_state: bool = False
    weight_scale: float = 1.0  # times the default initialisation

    def model(self, arch: str, dtype=np.float64) -> rnnbench.RNN:
        model = rnnbench.RNN(
            arch,
            self.input_size,
            self.hidden_size,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
            dtype=dtype,
            seed=self.seed,
        )
        model.params = {key: self.weight_scale * p for key, p in model.params.items()}
        return model

    def arrays(self, model: rnnbench.RNN) -> Arrays:
        """Seeded arrays for `model`; the state takes the structure forward returns."""
        rng = np.random.default_rng(self.seed)
        dtype = model.dtype

        def uniform(bound, shape):
            return rng.uniform(-bound, bound, shape).astype(dtype)

        x = uniform(X_BOUND, (self.seq_len, self.batch, self.input_size))
        y, template = model.forward(x)
        if self.zero_state:
            state = like(template, [np.zeros_like(p) for p in parts(template)])
        else:
            state = like(template, [uniform(STATE_BOUND, p.shape) for p in parts(template)])
        dy = uniform(COTANGENT_BOUND, y.shape)
        dstate = like(template, [uniform(COTANGENT_BOUND, p.shape) for p in parts(template)])
        return Arrays(x, state, dy, dstate)


@st.composite
def cases(
    draw,
    max_len: int = 4,
    max_batch: int = 3,
    max_size: int = 4,
    layers=(1, 2),
    bidirectional=(False, True),
    min_len: int = 1,
    min_batch: int = 1,
) -> Case:
    """A `Case` with every size drawn from 1 (or the given minimum) up to its maximum."""
    return Case(
        seq_len=draw(st.integers(min_len, max_len)),
        batch=draw(st.integers(min_batch, max_batch)),
        input_size=draw(st.integers(1, max_size)),
        hidden_size=draw(st.integers(1, max_size)),
        num_layers=draw(st.sampled_from(layers)),
        bidirectional=draw(st.sampled_from(bidirectional)),
        seed=draw(st.integers(0, 2**32 - 1)),
        zero_state=draw(st.booleans()),
        weight_scale=draw(st.sampled_from(WEIGHT_SCALES)),
    )


# Edge cases every drawn-case test pins with @example: T=1, B=1, I=1, H=1, zero state.
EDGE_CASES = (
    Case(1, 1, 1, 1, zero_state=True),
    Case(1, 2, 3, 1, num_layers=2, bidirectional=True, seed=1),
    Case(3, 1, 1, 2, bidirectional=True, seed=2, zero_state=True),
)


def with_edge_cases(arguments=None, **fixed):
    """Pin `EDGE_CASES` as explicit examples of a test drawing `case`, with `fixed` fields
    replaced where the test draws only some configurations (say bidirectional=True), and
    `arguments` (a dict) for the other arguments it draws."""

    def decorate(test):
        for case in EDGE_CASES:
            test = example(case=case._replace(**fixed), **(arguments or {}))(test)
        return test

    return decorate
