"""Elman RNN cells, torch.nn.RNN's convention: h = act(W_ih x + b_ih + W_hh h_prev + b_hh).

x: [T,B,I]  weight_ih: [H,I]  weight_hh: [H,H]  bias_ih, bias_hh: [H]
Nothing is saved beyond h itself: both derivatives are functions of h.
"""

from ..jit import gate
from . import DENSE, Cell
from .activations import ONE, ZERO, tanh


@gate
def tanh_forward(xp, hp, j, H, h_prev, c_prev, saved):
    return tanh(xp[j] + hp[j]), 0.0


@gate
def tanh_backward(saved, j, H, h_prev, c_prev, h, c, dh, dc, dxp, dhp):
    dpre = dh * (ONE - h * h)
    dxp[j] = dpre
    dhp[j] = dpre
    return 0.0, 0.0


@gate
def relu_forward(xp, hp, j, H, h_prev, c_prev, saved):
    return max(xp[j] + hp[j], ZERO), 0.0


@gate
def relu_backward(saved, j, H, h_prev, c_prev, h, c, dh, dc, dxp, dhp):
    dpre = dh if h > ZERO else ZERO * dh
    dxp[j] = dpre
    dhp[j] = dpre
    return 0.0, 0.0


RNN_TANH = Cell(
    name="rnn_tanh", gates=1, saved=0, recurrence=DENSE, has_cell_state=False,
    forward=tanh_forward, backward=tanh_backward, torch=("RNN", (("nonlinearity", "tanh"),)),
    sums_pre_activations=True,
)  # fmt: skip
RNN_RELU = Cell(
    name="rnn_relu", gates=1, saved=0, recurrence=DENSE, has_cell_state=False,
    forward=relu_forward, backward=relu_backward, torch=("RNN", (("nonlinearity", "relu"),)),
    sums_pre_activations=True,
)  # fmt: skip
