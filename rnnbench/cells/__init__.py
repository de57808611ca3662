"""The recurrent cells: each module holds one cell's gate math and its derivative.

`CELLS` maps every architecture name to its `Cell`, in the stable order that
`rnnbench.architectures()` reports: the built-in cells, then the user's, added
by `register_cell` or found through the plugins named below.
"""

import collections.abc
import importlib
import importlib.metadata
import os
import warnings
from typing import Any, NamedTuple

# How the previous hidden state enters the gate pre-activations.
DENSE = 0  # W_hh h_prev + b_hh, W_hh: [G*H, H]
DIAGONAL = 1  # w_hh * h_prev + b_hh, w_hh: [H] (G = 1)
NONE = 2  # not at all: the gates see only the input


class Cell(NamedTuple):
    """One architecture, as the drivers of both backends see it.

    The built-in cells and a user's own are alike: write the scalar functions
    below, decorate each (and any function they call) with `rnnbench.gate`,
    and pass the `Cell` to `rnnbench.register_cell`; `rnnbench.RNN(name, ...)`
    then runs it on either backend, stacked, bidirectional, with BPTT. Use
    float32 constants (`cells.activations.ONE`) in the math: a Python float
    literal makes float32 gate math float64, and slower.

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

    sums_pre_activations: True for a cell with recurrence that reads each gate's
    pre-activations only as their sum, xp[k] + hp[k] (LSTM, Elman, IndRNN):
    their gradients are then one, and the drivers pass dhp as the same array as
    dxp (one array of [T,B,G*H] fewer in the backward, and one bias sum).

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
    sums_pre_activations: bool = False  # see above

    @property
    def one_gradient(self) -> bool:
        """Whether the drivers keep one array for the gradients of both pre-activations:
        the cell sums them (`sums_pre_activations`) or has no recurrence."""
        return self.recurrence == NONE or self.sums_pre_activations

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


# Fresh processes (the asv suite, the CLI) find user cells here: the entry-point
# group, and a comma-separated list of modules to import. Importing a module
# found either way registers its cells; an entry point may also name a `Cell`.
ENTRY_POINTS = "rnnbench.cells"
MODULES_VARIABLE = "RNNBENCH_CELLS"


class _Registry(collections.abc.Mapping):
    """Name -> `Cell`: the built-ins, then user cells; plugins load on first read."""

    def __init__(self):
        self._cells: dict[str, Cell] = {}
        self._builtin: frozenset = frozenset()
        self._plugins_loaded = False

    def _read(self) -> dict[str, Cell]:
        if not self._plugins_loaded:
            self._plugins_loaded = True  # first, so plugins may read and register
            _load_plugins()
        return self._cells

    def __getitem__(self, name: str) -> Cell:
        return self._read()[name]

    def __iter__(self):
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())


CELLS = _Registry()


def register_cell(cell: Cell) -> Cell:
    """Add a user's cell to `CELLS` (and so to `rnnbench.architectures()`), or replace the
    user cell of the same name, so that an edited cell can be registered again.

    Raises TypeError or ValueError, naming the field, for anything the kernels
    could not run: see the `Cell` docstring for the contract. Returns `cell`.
    """
    _check_cell(cell)
    if cell.name in CELLS._builtin:
        raise ValueError(f"cell.name {cell.name!r} is a built-in architecture; choose another")
    CELLS._cells[cell.name] = cell
    return cell


def _check_cell(cell) -> None:
    if not isinstance(cell, Cell):
        raise TypeError(f"cell must be an rnnbench.Cell, got {type(cell).__name__}")
    if not (isinstance(cell.name, str) and cell.name.isidentifier()):
        raise ValueError(f"cell.name must be a Python identifier, got {cell.name!r}")
    for field, minimum in (("gates", 1), ("saved", 0)):
        value = getattr(cell, field)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"cell.{field} must be an integer >= {minimum}, got {value!r}")
    if cell.recurrence not in (DENSE, DIAGONAL, NONE):
        raise ValueError(
            f"cell.recurrence must be rnnbench.DENSE, DIAGONAL or NONE, got {cell.recurrence!r}"
        )
    if cell.recurrence == DIAGONAL and cell.gates != 1:
        raise ValueError(f"cell.gates must be 1 for recurrence DIAGONAL, got {cell.gates}")
    for field in ("has_cell_state", "sums_pre_activations"):
        if not isinstance(getattr(cell, field), bool):
            raise TypeError(f"cell.{field} must be a bool, got {getattr(cell, field)!r}")
    for field in ("forward", "backward", "scan"):
        function = getattr(cell, field)
        if (function is not None or field != "scan") and not hasattr(function, "rnnbench_typing"):
            raise TypeError(f"cell.{field} must be a function decorated with @rnnbench.gate")
    twin = cell.torch
    if twin is not None and not (
        isinstance(twin, tuple) and len(twin) == 2 and isinstance(twin[0], str)
        and all(isinstance(pair, tuple) and len(pair) == 2 for pair in twin[1])
    ):  # fmt: skip
        raise TypeError(f"cell.torch must be None or (name, ((key, value), ...)), got {twin!r}")
    if cell.scan is not None and (cell.recurrence != NONE or cell.has_cell_state):
        raise ValueError(
            "cell.scan needs recurrence NONE and no cell state (a step h = a * h_prev + b)"
        )


def _load_plugins() -> None:
    """Import the modules named by the entry points and RNNBENCH_CELLS; a plugin that fails
    is a warning naming it, and the other cells stay usable."""
    plugins = [
        (f"entry point {ep.name!r} ({ep.value})", ep.load)
        for ep in importlib.metadata.entry_points(group=ENTRY_POINTS)
    ]
    names = [name.strip() for name in os.environ.get(MODULES_VARIABLE, "").split(",")]
    plugins += [
        (f"{MODULES_VARIABLE} module {name!r}", lambda name=name: importlib.import_module(name))
        for name in names
        if name
    ]
    for what, load in plugins:
        try:
            loaded = load()
            if isinstance(loaded, Cell):
                register_cell(loaded)
        except Exception as error:  # one broken plugin must not hide every cell
            warnings.warn(
                f"rnnbench could not load the cells of {what}: {type(error).__name__}: {error}",
                RuntimeWarning,
                stacklevel=2,
            )


def _register_builtins() -> None:
    from . import elman, gru, indrnn, lstm, mingru, minlstm

    cells = (
        elman.RNN_TANH, elman.RNN_RELU, lstm.LSTM, gru.GRU, indrnn.INDRNN, mingru.MINGRU,
        minlstm.MINLSTM,
    )  # fmt: skip
    CELLS._cells.update((cell.name, cell) for cell in cells)
    CELLS._builtin = frozenset(CELLS._cells)


_register_builtins()
