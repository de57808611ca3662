"""minLSTM (Feng et al. 2024): h = f' * h_prev + i' * h~ with f' = f/(f+i), i' = i/(f+i).

f = sigmoid(W_f x + b_f), i = sigmoid(W_i x + b_i), h~ = W_h x + b_h; gate order f, i, h~.
x: [T,B,I]  weight_ih: [3H,I]  bias_ih: [3H]  (no weight_hh, bias_hh)
saved: [T,B,5H] f' (the decay a of h = a * h_prev + b), i', 1 - f, 1 - i, h~.

f/(f+i) is 0/0 where both gates vanish, so it is computed from the
pre-activations p_f, p_i instead. With softplus(x) = log(1 + exp(x)):
  i/f = (1 + exp(-p_f)) / (1 + exp(-p_i)) = exp(softplus(-p_f) - softplus(-p_i)),
  f' = 1 / (1 + i/f) = sigmoid(d),  i' = 1 - f' = sigmoid(-d),
  d = softplus(-p_i) - softplus(-p_f),
finite for every finite p_f, p_i (both gates vanishing give d ~ p_f - p_i).
Its derivative: dd/dp_f = sigmoid(-p_f) = 1 - f, dd/dp_i = -(1 - i), df'/dd = f' i'.
"""

from ..config import gate
from . import NONE, Cell
from .activations import sigmoid, softplus


@gate
def forward(xp, hp, j, H, h_prev, c_prev, saved):
    d = softplus(-xp[H + j]) - softplus(-xp[j])
    forget = sigmoid(d)
    input_weight = sigmoid(-d)
    candidate = xp[2 * H + j]
    saved[j] = forget
    saved[H + j] = input_weight
    saved[2 * H + j] = sigmoid(-xp[j])
    saved[3 * H + j] = sigmoid(-xp[H + j])
    saved[4 * H + j] = candidate
    return forget * h_prev + input_weight * candidate, 0.0


@gate
def backward(saved, j, H, h_prev, c_prev, h, c, dh, dc, dxp, dhp):
    forget = saved[j]
    input_weight = saved[H + j]
    candidate = saved[4 * H + j]
    dd = dh * (h_prev - candidate) * forget * input_weight
    dxp[j] = dd * saved[2 * H + j]
    dxp[H + j] = -dd * saved[3 * H + j]
    dxp[2 * H + j] = dh * input_weight
    return dh * forget, 0.0


@gate
def decay(saved, j, H):
    return saved[j]


MINLSTM = Cell("minlstm", 3, 5, NONE, False, forward, backward, decay)
