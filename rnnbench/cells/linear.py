"""What the cells whose step is linear in the state share: h = a * h_prev + b.

minGRU and minLSTM both save the decay a first, so one `Cell.scan` serves both.
"""

from ..jit import gate


@gate
def saved_decay(saved, j, H):
    """The decay a of unit j, which the cell's `forward` saved in saved[j]."""
    return saved[j]
