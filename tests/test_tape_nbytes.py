"""`RNN.tape_nbytes`: the bytes BPTT keeps between forward and backward.

The memory benchmarks record it; these tests pin how it scales.
"""

import numpy as np
import pytest

import rnnbench

B, H = 3, 5


def _tape_nbytes(arch, seq_len, dtype=np.float32, **kwargs):
    model = rnnbench.RNN(arch, H, H, dtype=dtype, **kwargs)
    model.forward(np.zeros((seq_len, B, H), dtype))
    return model.tape_nbytes


@pytest.mark.parametrize("arch", rnnbench.architectures())
def test_grows_linearly_in_time_and_holds_every_hidden_state(arch):
    sizes = [_tape_nbytes(arch, seq_len) for seq_len in (4, 8, 12)]
    assert sizes[1] - sizes[0] == sizes[2] - sizes[1] > 0
    assert sizes[0] >= (4 + 1) * B * H * np.dtype(np.float32).itemsize


def test_float64_keeps_twice_the_bytes():
    assert _tape_nbytes("lstm", 6, np.float64) == 2 * _tape_nbytes("lstm", 6)


@pytest.mark.parametrize("arch", ["lstm", "gru"])
def test_counts_every_array_the_tape_holds_once(arch):
    """Each layer's input (a copy of x for the first), each layer-direction's states and
    saved gates, and the copy of the parameters, over 2 layers and 2 directions."""
    T, I = 6, 2  # noqa: E741
    cell = rnnbench.cells.CELLS[arch]
    model = rnnbench.RNN(arch, I, H, num_layers=2, bidirectional=True)
    model.forward(np.zeros((T, B, I), np.float32))
    inputs = T * B * I + T * B * 2 * H
    states = (T + 1) * B * H * (2 if cell.has_cell_state else 1) + T * B * cell.saved * H
    params = sum(p.size for p in model.params.values())
    assert model.tape_nbytes == (inputs + 4 * states + params) * 4


def test_before_forward_is_an_error():
    with pytest.raises(ValueError, match="forward"):
        rnnbench.RNN("lstm", 2, 3).tape_nbytes  # noqa: B018
