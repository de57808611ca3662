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


def test_adds_up_over_layers_and_directions():
    # With input size H, every layer-direction of this stack keeps the same tape.
    stack = _tape_nbytes("gru", 6, num_layers=2, bidirectional=True)
    assert stack == 4 * _tape_nbytes("gru", 6)


def test_before_forward_is_an_error():
    with pytest.raises(ValueError, match="forward"):
        rnnbench.RNN("lstm", 2, 3).tape_nbytes  # noqa: B018
