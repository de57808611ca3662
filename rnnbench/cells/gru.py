"""GRU, torch.nn.GRU's convention: gates r, z, n.

r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
h' = (1 - z) * n + z * h

x: [T,B,I]  weight_ih: [3H,I]  weight_hh: [3H,H]  bias_ih, bias_hh: [3H]
saved: [T,B,4H] r, z, n and W_hn h + b_hn.
"""

from ..jit import gate
from . import DENSE, Cell
from .activations import ONE, sigmoid, tanh


@gate
def forward(xp, hp, j, H, h_prev, c_prev, saved):
    r = sigmoid(xp[j] + hp[j])
    z = sigmoid(xp[H + j] + hp[H + j])
    hn = hp[2 * H + j]
    n = tanh(xp[2 * H + j] + r * hn)
    saved[j] = r
    saved[H + j] = z
    saved[2 * H + j] = n
    saved[3 * H + j] = hn
    return (ONE - z) * n + z * h_prev, 0.0


@gate
def backward(saved, j, H, h_prev, c_prev, h, c, dh, dc, dxp, dhp):
    r, z, n, hn = saved[j], saved[H + j], saved[2 * H + j], saved[3 * H + j]
    dn = dh * (ONE - z) * (ONE - n * n)
    dr = dn * hn * r * (ONE - r)
    dz = dh * (h_prev - n) * z * (ONE - z)
    dxp[j] = dhp[j] = dr
    dxp[H + j] = dhp[H + j] = dz
    dxp[2 * H + j] = dn
    dhp[2 * H + j] = dn * r
    return dh * z, 0.0


GRU = Cell(
    name="gru", gates=3, saved=4, recurrence=DENSE, has_cell_state=False,
    forward=forward, backward=backward, torch=("GRU", ()),
)  # fmt: skip
