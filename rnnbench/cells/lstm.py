"""LSTM without peepholes, torch.nn.LSTM's convention: gates i, f, g, o and two biases.

x: [T,B,I]  weight_ih: [4H,I]  weight_hh: [4H,H]  bias_ih, bias_hh: [4H]
saved: [T,B,4H] the activated gates i, f, g, o; tanh(c) is recomputed.
"""

from ..jit import gate
from . import DENSE, Cell
from .activations import ONE, sigmoid, tanh


@gate
def forward(xp, hp, j, H, h_prev, c_prev, saved):
    i = sigmoid(xp[j] + hp[j])
    f = sigmoid(xp[H + j] + hp[H + j])
    g = tanh(xp[2 * H + j] + hp[2 * H + j])
    o = sigmoid(xp[3 * H + j] + hp[3 * H + j])
    saved[j] = i
    saved[H + j] = f
    saved[2 * H + j] = g
    saved[3 * H + j] = o
    c = f * c_prev + i * g
    return o * tanh(c), c


@gate
def backward(saved, j, H, h_prev, c_prev, h, c, dh, dc, dxp, dhp):
    i, f, g, o = saved[j], saved[H + j], saved[2 * H + j], saved[3 * H + j]
    tanh_c = tanh(c)
    dc = dc + dh * o * (ONE - tanh_c * tanh_c)
    di = dc * g * i * (ONE - i)
    df = dc * c_prev * f * (ONE - f)
    dg = dc * i * (ONE - g * g)
    do = dh * tanh_c * o * (ONE - o)
    dxp[j] = dhp[j] = di
    dxp[H + j] = dhp[H + j] = df
    dxp[2 * H + j] = dhp[2 * H + j] = dg
    dxp[3 * H + j] = dhp[3 * H + j] = do
    return 0.0, dc * f


LSTM = Cell(
    name="lstm", gates=4, saved=4, recurrence=DENSE, has_cell_state=True,
    forward=forward, backward=backward, torch=("LSTM", ()),
    sums_pre_activations=True,
)  # fmt: skip
