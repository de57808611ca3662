"""minLSTM (Feng et al. 2024): h = f' * h_prev + i' * h~ with f' = f/(f+i), i' = i/(f+i).

f = sigmoid(W_f x + b_f), i = sigmoid(W_i x + b_i), h~ = W_h x + b_h; gate order f, i, h~.
x: [T,B,I]  weight_ih: [3H,I]  bias_ih: [3H]  (no weight_hh, bias_hh)
saved: [T,B,5H] f' (the decay a of h = a * h_prev + b), i', 1 - f, 1 - i, h~.

f/(f+i) is 0/0 where both gates vanish, and 1 + exp(-p) overflows, so it is
computed from the pre-activations p_f, p_i scaled. With u = 1 + exp(-p) = 1/sigmoid(p),
  f' = f/(f+i) = (1/u_f) / (1/u_f + 1/u_i) = u_i / (u_i + u_f);
multiplying through by exp(-m), m = max(0, -p_f, -p_i), every exponent is <= 0
and one term is exp(0) = 1:
  n_f = exp(-m) + e_f,  n_i = exp(-m) + e_i,  e = exp(-p - m),
  f' = n_i / (n_f + n_i),  i' = n_f / (n_f + n_i),
sums of positive terms with n_f + n_i >= 1: nothing overflows, cancels or
divides by 0 (both gates vanishing give e_f = e_i = 1 and the limit 1/2).
Derivative: f' = sigmoid(d) with d = log(u_i / u_f), so df'/dd = f' i',
dd/dp_f = 1 - f = sigmoid(-p_f), dd/dp_i = -(1 - i) = -sigmoid(-p_i).
"""

from ..jit import gate
from . import NONE, Cell
from .activations import ZERO, exp, sigmoid
from .linear import saved_decay


@gate
def forward(xp, hp, j, H, h_prev, c_prev, saved):
    pre_f, pre_i = xp[j], xp[H + j]
    m = max(ZERO, -pre_f, -pre_i)
    scale = exp(-m)
    e_f, e_i = exp(-pre_f - m), exp(-pre_i - m)
    n_f, n_i = scale + e_f, scale + e_i
    forget = n_i / (n_f + n_i)
    input_weight = n_f / (n_f + n_i)
    candidate = xp[2 * H + j]
    saved[j] = forget
    saved[H + j] = input_weight
    saved[2 * H + j] = sigmoid(-pre_f)
    saved[3 * H + j] = sigmoid(-pre_i)
    saved[4 * H + j] = candidate
    return forget * h_prev + input_weight * candidate, 0.0


@gate
def backward(saved, j, H, h_prev, c_prev, h, c, dh, dc, dxp, dhp):
    forget, input_weight, candidate = saved[j], saved[H + j], saved[4 * H + j]
    dd = dh * (h_prev - candidate) * forget * input_weight
    dxp[j] = dd * saved[2 * H + j]
    dxp[H + j] = -dd * saved[3 * H + j]
    dxp[2 * H + j] = dh * input_weight
    return dh * forget, 0.0


MINLSTM = Cell(
    name="minlstm", gates=3, saved=5, recurrence=NONE, has_cell_state=False,
    forward=forward, backward=backward, scan=saved_decay,
)  # fmt: skip
