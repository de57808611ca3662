"""IndRNN (Li et al. 2018): h = relu(W_ih x + b_ih + w_hh * h_prev + b_hh), w_hh a vector.

x: [T,B,I]  weight_ih: [H,I]  bias_ih: [H]  weight_hh: [H]  bias_hh: [H]
The gate math is the ReLU Elman cell's; only the recurrence is elementwise.
"""

from . import DIAGONAL, Cell
from .elman import relu_backward, relu_forward

INDRNN = Cell(
    name="indrnn", gates=1, saved=0, recurrence=DIAGONAL, has_cell_state=False,
    forward=relu_forward, backward=relu_backward,
    sums_pre_activations=True,
)  # fmt: skip
