"""minGRU (Feng et al. 2024): h = (1 - z) * h_prev + z * h~, its gates see only the input.

z = sigmoid(W_z x + b_z), h~ = W_h x + b_h; gate order z, h~ (weight_ih = [W_z; W_h]).
x: [T,B,I]  weight_ih: [2H,I]  bias_ih: [2H]  (no weight_hh, bias_hh)
saved: [T,B,3H] 1 - z (the decay a of h = a * h_prev + b), z, h~.
"""

from ..jit import gate
from . import NONE, Cell
from .activations import sigmoid
from .linear import saved_decay


@gate
def forward(xp, hp, j, H, h_prev, c_prev, saved):
    decay = sigmoid(-xp[j])  # 1 - z, kept exact where z rounds to 1
    z = sigmoid(xp[j])
    candidate = xp[H + j]
    saved[j] = decay
    saved[H + j] = z
    saved[2 * H + j] = candidate
    return decay * h_prev + z * candidate, 0.0


@gate
def backward(saved, j, H, h_prev, c_prev, h, c, dh, dc, dxp, dhp):
    decay, z, candidate = saved[j], saved[H + j], saved[2 * H + j]
    dxp[j] = dh * (candidate - h_prev) * z * decay  # dz/dpre_z = z (1 - z)
    dxp[H + j] = dh * z
    return dh * decay, 0.0


MINGRU = Cell(
    name="mingru", gates=2, saved=3, recurrence=NONE, has_cell_state=False,
    forward=forward, backward=backward, scan=saved_decay,
)  # fmt: skip
