"""IndRNN (Li et al. 2018): h = relu(W_ih x + b_ih + w_hh * h_prev + b_hh), w_hh a vector.

x: [T,B,I]  weight_ih: [H,I]  bias_ih: [H]  weight_hh: [H]  bias_hh: [H]
The gate math is the ReLU Elman cell's; only the recurrence is elementwise.
"""

from . import DIAGONAL, Cell
from .elman import relu_backward, relu_forward

INDRNN = Cell("indrnn", 1, 0, DIAGONAL, False, relu_forward, relu_backward)
