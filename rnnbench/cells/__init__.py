"""The recurrent cells: each module holds one cell's gate math and its derivative.

`CELLS` maps every architecture name to its `Cell`, in the stable order that
`rnnbench.architectures()` reports.
"""

from typing import Any, NamedTuple

# How the previous hidden state enters the gate pre-activations.
DENSE = 0  # W_hh h_prev + b_hh, W_hh: [G*H, H]
DIAGONAL = 1  # w_hh * h_prev + b_hh, w_hh: [H] (G = 1)
NONE = 2  # not at all: the gates see only the input


class Cell(NamedTuple):
    """One architecture, as the drivers of both backends see it.

    The scalar functions work on one batch row and one hidden unit j:

    forward(xp, hp, j, H, h_prev, c_prev, saved) -> (h, c)
        xp: [G*H] input pre-activations W_ih x + b_ih of this step and row
        hp: [G*H] recurrent pre-activations (see `recurrence`)
        saved: [S*H] written here, handed to `backward` as it is
    backward(saved, j, H, h_prev, c_prev, h, c, dh, dc, dxp, dhp) -> (dh_prev, dc_prev)
        dh, dc: dL/dh_t, dL/dc_t; writes dxp[g*H + j] and dhp[g*H + j], the
        gradients of the pre-activations, and returns the parts of dL/dh_{t-1}
        that do not pass through hp, and dL/dc_{t-1}.
    Cells without a cell state return c = 0 and ignore c_prev, c and dc.
    Cells with recurrence NONE read only xp and write only dxp (the drivers
    may pass dhp as the same array as dxp).

    scan(saved, j, H) -> a, for cells whose step is linear in the state,
    h = a * h_prev + b, with a, b and everything `forward` saves independent
    of h_prev (no cell state): returns the decay a that `forward` saved.
    The parallel scans take b's local recurrence from `forward` itself and
    the pre-activation gradients from `backward` (given the full dL/dh_t), so
    each cell's math stays in its two functions; None for other cells.

    torch: the cell's PyTorch twin, (class name in torch.nn, its keyword
    arguments as (name, value) pairs), e.g. ("RNN", (("nonlinearity", "tanh"),));
    `rnnbench compare`, the benchmarks and the tests build it with copied
    weights and compare. Pairs, not a dict: the backends cache kernels per Cell,
    which must stay hashable. None for a cell PyTorch does not have.
    """

    name: str
    gates: int  # G: weight_ih has G*H rows
    saved: int  # S: saved activations per hidden unit and step
    recurrence: int  # DENSE, DIAGONAL or NONE
    has_cell_state: bool
    forward: Any
    backward: Any
    scan: Any = None  # the decay a of h = a * h_prev + b, see above
    torch: tuple[str, tuple[tuple[str, Any], ...]] | None = None  # see above

    def param_shapes(self, input_size: int, hidden_size: int) -> dict[str, tuple[int, ...]]:
        """Shapes of one layer-direction's parameters, keyed without the layer suffix."""
        rows = self.gates * hidden_size
        shapes = {"weight_ih": (rows, input_size), "bias_ih": (rows,)}
        if self.recurrence == DENSE:
            shapes.update(weight_hh=(rows, hidden_size), bias_hh=(rows,))
        elif self.recurrence == DIAGONAL:
            shapes.update(weight_hh=(hidden_size,), bias_hh=(hidden_size,))
        return shapes

    def flops_per_step(self, input_size: int, hidden_size: int) -> int:
        """Multiply-add FLOPs (2 per MAC) of one forward step for one batch row.

        Counts the matrix products only, which dominate; a training step
        (forward + BPTT) costs three times this.
        """
        rows = self.gates * hidden_size
        flops = 2 * rows * input_size
        if self.recurrence == DENSE:
            flops += 2 * rows * hidden_size
        elif self.recurrence == DIAGONAL:
            flops += 2 * hidden_size
        return flops


def _registry() -> dict[str, Cell]:
    from . import elman, gru, indrnn, lstm, mingru, minlstm

    cells = [
        elman.RNN_TANH,
        elman.RNN_RELU,
        lstm.LSTM,
        gru.GRU,
        indrnn.INDRNN,
        mingru.MINGRU,
        minlstm.MINLSTM,
    ]
    return {cell.name: cell for cell in cells}


CELLS = _registry()
