"""CPU backend (`rnnbench.backend.Backend`): numba.njit time loops around matrix products
against packed weights.

Every function takes and returns NumPy arrays. Here: the layer drivers; in
`loops` the compiled time loops, in `scan` the parallel scans, in `panels` the
product kernel, in `threads` the thread blocks and the large products split over
them (oneMKL's on Intel CPUs).
"""

import functools
import sys
import time

import numpy as np

from ..backend import Tape, parameter_gradients, reused, rows, step_nbytes
from ..cells import DENSE, Cell
from ..config import (
    AHEAD_MIN_FLOPS,
    AHEAD_ROWS,
    BEHIND_MIN_FLOPS,
    COLUMN_SUM_FLOPS,
    LOOP_PROJECTION_MIN_ROWS,
    PROJECTION_CHUNK_BYTES,
    SPLIT_UNITS_BYTES,
)
from . import barrier, mkl, panels, scan, threads, workspace
from .loops import (
    PACKED,
    add_column_sums,
    loop_flops,
    project_ahead,
    step_product,
    time_loops,
)
from .memory import (
    free_memory,  # noqa: F401  (a Backend function)
    keep_freed_memory,
)
from .threads import in_blocks, layer_call, matmul, matmul_transposed_left


def check_available():
    """The CPU backend runs wherever Numba does."""


def asarray(a, copy: bool = False):
    """The backend's array for `a`: C-contiguous NumPy, a copy when `copy`, else copied
    only if it is not already.

    One memory layout means one compiled version of each kernel.
    """
    return np.array(a, order="C") if copy else np.ascontiguousarray(a)


def to_host(a) -> np.ndarray:
    return a


def zeros(shape, dtype) -> np.ndarray:
    return np.zeros(shape, dtype)


def empty(shape, dtype) -> np.ndarray:
    return np.empty(shape, dtype)


def stack(arrays) -> np.ndarray:
    return np.stack(arrays)


def transposed_products(a, bs) -> list:
    return matmul_transposed_left(a, bs)


def add_product(a, b, out) -> None:
    matmul(a, b, out, accumulate=True)


def column_sums(a, scale=None) -> np.ndarray:
    """Summed in float64 by blocks of rows on threads, without a temporary for a * scale
    (IndRNN, T=1024, B=16, H=256: 2.7 ms in NumPy, 0.8 here; NumPy's float32 sums
    were off by 1.5e-3 there)."""
    M, N = a.shape
    a = _whole_rows(a)
    scale = None if scale is None else _whole_rows(scale)
    no_scale = np.zeros((0, 0), a.dtype)
    sums = {}

    def add(lo, hi):
        sums[lo] = np.zeros(N)
        add_column_sums(a, no_scale if scale is None else scale, lo, hi, sums[lo])

    in_blocks(add, M, a.size * COLUMN_SUM_FLOPS)
    first, *rest = (sums[lo] for lo in sorted(sums))  # in row order: repeatable bits
    return sum(rest, first).astype(a.dtype)


# Bytes of a cache line.
LINE_BYTES = 64
# Seconds between looks at a backward loop's count by the thread that takes the
# gradients behind it (`_gradients_beside_loop`; Linux sleeps 50-60 us more).
POLL_SECONDS = 2e-5


def padded_row(n: int, dtype) -> int:
    """Elements of a row of n, plus a cache line where n fill an even number of lines: a
    column's successive rows then fall in different sets of the L1 cache, as they do
    not at a stride of 2, 4 or 8 KiB (the weight gradients read dxp's columns, a
    tile of them at a time; LSTM H=256, 4 KiB rows: 98 GFLOP/s a core, 102-107 with
    65 lines a row; H=128: 96, 107)."""
    nbytes = n * np.dtype(dtype).itemsize
    return n + LINE_BYTES // np.dtype(dtype).itemsize if nbytes % (2 * LINE_BYTES) == 0 else n


def _whole_rows(a: np.ndarray) -> np.ndarray:
    """a: [M,N] with contiguous rows further apart than N (the first N columns of dxp's
    padded rows, see `padded_row`) as the C-contiguous [M, row stride] over the same
    memory, whose first N columns are a; else a. A compiled loop vectorises over
    C-contiguous rows, not over a view whose strides it reads at run time (the column
    sums of an LSTM's dxp at 100,32,128, 3200 rows of 512: 0.61 ms, 0.22 over the whole
    rows)."""
    row = a.strides[0] // a.itemsize
    if a.flags.c_contiguous or a.strides[1] != a.itemsize or row * a.itemsize != a.strides[0]:
        return a
    return np.lib.stride_tricks.as_strided(a, (a.shape[0], row), a.strides, writeable=False)


def _empty(dtype) -> np.ndarray:
    """Stand-in for an array the kernels never read: a parameter the cell does not have,
    or a packed weight the loop does not take (of the packs' dtype: one compiled loop
    for both)."""
    return np.zeros(0, dtype)


def _takes_packed(cell: Cell, B: int, H: int) -> bool:
    """Whether the steps of a layer call over B rows multiply by packed weights (every
    block of its rows does, whatever its size)."""
    return cell.recurrence == DENSE and step_product(cell, B, H) == PACKED


def _splits_units(cell: Cell, B: int, H: int, dtype) -> bool:
    """Whether the time loop's threads split the hidden units (each with every row and
    its units' part of W_hh, meeting at each step) rather than the rows: where W_hh
    exceeds config.SPLIT_UNITS_BYTES and the steps multiply packed weights."""
    w_hh_bytes = cell.gates * H * H * np.dtype(dtype).itemsize
    return (
        _takes_packed(cell, B, H)
        and barrier.AVAILABLE
        and threads.THREADS > 1
        and H >= threads.THREADS
        and w_hh_bytes > SPLIT_UNITS_BYTES
    )


def _thread_rows(cell: Cell, T: int, B: int, H: int, dtype) -> int | None:
    """Rows each of the time loop's threads takes, where its blocks of rows (or its unit
    split) fill every thread; else None."""
    if _splits_units(cell, B, H, dtype):
        return B
    blocks = threads.block_count(B, loop_flops(cell, T, B, H))
    return -(-B // blocks) if blocks == min(threads.THREADS, B) else None


def _projects_in_loop(cell: Cell, T: int, B: int, H: int, dtype) -> bool:
    """Whether the time loop's threads compute their rows' input products themselves, in
    chunks of steps (see config.LOOP_PROJECTION_MIN_ROWS), rather than one product of
    every step first."""
    rows = _thread_rows(cell, T, B, H, dtype)
    return _takes_packed(cell, B, H) and rows is not None and rows >= LOOP_PROJECTION_MIN_ROWS


def _ahead_steps(B: int) -> int:
    """Steps of input products `project_ahead` computes at once: AHEAD_ROWS rows (one step
    at least)."""
    return max(1, -(-AHEAD_ROWS // B))


def _loop_alone(cell: Cell, T: int, B: int, H: int, dtype) -> bool:
    """Whether the time loop runs on one thread (its rows in one block, not the units'
    split) while another would idle."""
    return (
        threads.THREADS > 1
        and barrier.AVAILABLE
        and not _splits_units(cell, B, H, dtype)
        and threads.block_count(B, loop_flops(cell, T, B, H)) == 1
    )


def _projects_ahead(cell: Cell, T: int, B: int, H: int, dtype, input_size: int) -> bool:
    """Whether another thread computes the input products, a chunk of steps at a time
    (`project_ahead`), while the time loop walks the steps: where the loop runs alone,
    it has at least two chunks of steps, and the products are AHEAD_MIN_FLOPS or more
    (which pay for the hand-off to the other thread)."""
    flops = 2 * T * B * input_size * cell.gates * H
    return _loop_alone(cell, T, B, H, dtype) and _ahead_steps(B) < T and flops >= AHEAD_MIN_FLOPS


def _gradients_behind(cell: Cell, T: int, B: int, H: int, dtype, input_size: int) -> bool:
    """Whether another thread takes the parameter gradients and dx of the steps the
    backward loop walks first while it walks the rest (`_gradients_beside_loop`): where
    the loop runs alone, over two steps or more, and these products (both weights' and
    dx's, at most) are BEHIND_MIN_FLOPS or more, but would not split over more than two
    threads (the halves run in one block each)."""
    flops = 2 * T * B * cell.gates * H * (2 * input_size + H)
    return (
        _loop_alone(cell, T, B, H, dtype)
        and T >= 2
        and flops >= BEHIND_MIN_FLOPS
        and threads.block_count(T * B, flops) <= 2
    )


def _chunk_steps(cell: Cell, T: int, B: int, H: int, dtype) -> int:
    """Steps of input products a thread computes at once in the loop: at most
    config.PROJECTION_CHUNK_BYTES of its rows' gates, at least 1, at most T."""
    split = _splits_units(cell, B, H, dtype)
    units = max(u1 - u0 for u0, u1 in _unit_bounds(H)) if split else H
    step = _thread_rows(cell, T, B, H, dtype) * cell.gates * units * np.dtype(dtype).itemsize
    return max(1, min(T, PROJECTION_CHUNK_BYTES // step))


def _unit_bounds(H: int) -> list[tuple[int, int]]:
    """Each thread's hidden units, when the loop splits them."""
    parties = threads.THREADS
    return [(k * H // parties, (k + 1) * H // parties) for k in range(parties)]


def _gate_blocks(a, H: int, u0: int, u1: int) -> list:
    """The columns (rows of a 2-D `a`) of units u0:u1 of each gate, a block per gate."""
    return [a[g : g + u1 - u0] for g in range(u0, a.shape[0], H)]


def _gates_of(a, H: int, u0: int, u1: int):
    """The columns (rows of a 2-D `a`) of units u0:u1 of each gate, together."""
    return np.concatenate(_gate_blocks(a, H, u0, u1))


def _pack_all(requests: dict) -> dict:
    """{role: `panels.pack` of its matrix} for requests {role: (blocks, transpose)}: the
    matrix is the rows of `blocks` stacked (one array, or a thread's gates of a
    weight), transposed where asked. Each is gathered and packed into the calling
    thread's reusable buffers for its role (`workspace`), its panels on the threads
    in parallel."""
    packed = {}
    for role, (blocks, transpose) in requests.items():
        shape = (sum(block.shape[0] for block in blocks), blocks[0].shape[1])
        dtype = blocks[0].dtype
        b = blocks[0]
        if len(blocks) > 1:
            b = np.concatenate(blocks, out=workspace.empty(f"{role} gathered", shape, dtype))
        size = panels.packed_size(shape[::-1] if transpose else shape, dtype)
        packed[role] = threads.pack(b.T if transpose else b, workspace.empty(role, (size,), dtype))
    return packed


def _buffer(k: int, name: str, shape, dtype) -> np.ndarray:
    """Thread k's reusable buffer `name` of a time loop (see `workspace`)."""
    return workspace.empty(f"{name} {k}", shape, dtype)


def _recurrent_weight(cell: Cell, params: dict, product: int):
    """(W_hh, W_hh transposed), C-contiguous; the transpose only where a DENSE cell's
    product takes it (not PACKED, which packs W_hh)."""
    dtype = params["weight_ih"].dtype
    w_hh = np.ascontiguousarray(params.get("weight_hh", _empty(dtype)))
    if cell.recurrence == DENSE and product != PACKED:
        return w_hh, np.ascontiguousarray(w_hh.T)
    return w_hh, np.empty((0, 0), dtype)


def _product_packs_nbytes(cell: Cell, T: int, B: int, H: int, dtype, input_size: int) -> int:
    """The packed copies that a layer call's large products make at once, each padded to
    whole panels: the largest of W_ih^T for the input projection (oneMKL's takes none,
    `project_ahead` one), and where oneMKL is not loaded W_ih for dx and the rows of x
    and of h side by side for the weight gradients. Where two threads take the gradients'
    halves at once (`_gradients_beside_loop`), each holds one of its own: W_ih for dx, or
    its half's rows side by side."""
    GH = cell.gates * H
    projection = panels.packed_size((input_size, GH), dtype)
    if mkl.AVAILABLE:
        ahead = _projects_ahead(cell, T, B, H, dtype, input_size)
        return projection * np.dtype(dtype).itemsize if ahead else 0

    def sides(rows: int) -> int:
        return panels.packed_size((rows, input_size), dtype) + panels.packed_size((rows, H), dtype)

    dx_pack = panels.packed_size((GH, input_size), dtype)
    if _gradients_behind(cell, T, B, H, dtype, input_size):
        packs = [projection, 2 * dx_pack, 2 * sides(-(-T // 2) * B)]
    else:
        packs = [projection, dx_pack, sides(T * B)]
    return max(packs) * np.dtype(dtype).itemsize


def layer_workspace_nbytes(cell: Cell, T: int, B: int, H: int, dtype, input_size: int) -> int:
    """`Backend.layer_workspace_nbytes`: the packed weights: the forward's W_ih^T (where the
    loop projects the input) and W_hh^T (for each thread its units' gates where they are
    split, gathered first), or the backward's W_hh (each thread's units' columns); the
    packed copies of the large products (`_product_packs_nbytes`); and the padding of
    the backward's rows of dxp and dhp (`padded_row`)."""
    G, GH, itemsize = cell.gates, cell.gates * H, np.dtype(dtype).itemsize
    padding = (1 if cell.one_gradient else 2) * T * B * (padded_row(GH, dtype) - GH) * itemsize
    beyond_weights = _product_packs_nbytes(cell, T, B, H, dtype, input_size) + padding
    if not _takes_packed(cell, B, H):
        return beyond_weights
    split = _splits_units(cell, B, H, dtype)
    if split:
        n = max(u1 - u0 for u0, u1 in _unit_bounds(H))
        parties, forward_shapes, backward_shape = threads.THREADS, [(H, G * n)], (GH, n)
        input_shape = (input_size, G * n)
    else:
        parties, forward_shapes, backward_shape = 1, [(H, GH)], (GH, H)
        input_shape = (input_size, GH)
    if _projects_in_loop(cell, T, B, H, dtype):
        forward_shapes.append(input_shape)
    forward = parties * sum(
        (panels.packed_size(shape, dtype) + (shape[0] * shape[1] if split else 0)) * itemsize
        for shape in forward_shapes
    )
    backward = parties * panels.packed_size(backward_shape, dtype) * itemsize
    return max(forward, backward) + beyond_weights


def tapeless_step_nbytes(cell: Cell, T: int, B: int, H: int, dtype, parallel_scan: bool) -> int:
    """`Backend.tapeless_step_nbytes`: the input projection's (none where the loop
    projects the input, in chunks of a fixed size), and the states' and saved
    activations' for the scan."""
    if parallel_scan and scan.splits_time(T, B):
        return step_nbytes(cell, B, H, dtype)
    if _projects_in_loop(cell, T, B, H, dtype):
        return 0
    return B * cell.gates * H * np.dtype(dtype).itemsize


def _layer_call():
    """`threads.layer_call`; the first one has glibc keep freed memory
    (`keep_freed_memory`)."""
    keep_freed_memory()
    return layer_call()


def _run_loop(cell: Cell, T: int, B: int, H: int, bounds, loop) -> None:
    """loop(lo, hi, u0, u1, counts, me) on threads: blocks of rows, each with every unit,
    or, where the units are split (`bounds`: each thread's units, else None), every row
    on each thread's units, which meet at a barrier."""
    if bounds:
        counts = barrier.progress(len(bounds))
        threads.together(lambda k: loop(0, B, *bounds[k], counts, k), len(bounds))
    else:
        no_counts = np.empty(0, np.int32)
        in_blocks(lambda lo, hi: loop(lo, hi, 0, H, no_counts, 0), B, loop_flops(cell, T, B, H))


def _run_beside_projection(reverse: bool, x, params: dict, x_proj, H: int, loop) -> None:
    """loop(lo, hi, u0, u1, counts, me) over every row and unit on this thread while
    another fills x_proj ahead of it (`project_ahead`), a chunk of steps at a time.
    This thread projects the first chunk itself, while the other wakes up (a sleeping
    pool thread starts 70-120 us later on this project's VM: LSTM 200,1,128 inference,
    alternating in one process, 0.79-0.87 ms against 0.89-0.99; GRU 0.71 against
    0.76)."""
    B = x.shape[1]
    packed_ih = threads.pack(params["weight_ih"].T)
    x_rows, x_proj_rows = rows(x), rows(x_proj)  # x copied where its rows are not one block
    counts = barrier.progress(1)
    T, steps = x.shape[0], _ahead_steps(B)

    def project(first, last):
        project_ahead(
            reverse, steps, first, last, B, x_rows, packed_ih, params["bias_ih"], x_proj_rows,
            counts,
        )  # fmt: skip

    project(0, steps)  # fewer than T: see `_projects_ahead`

    def part(k):
        if k == 0:
            loop(0, B, 0, H, counts, 0)
            return
        try:
            project(steps, T)
        except BaseException:
            barrier.arrive(counts, 0, T)  # the loop waits no more; the error is raised
            raise

    threads.together(part, 2)


def _gradients_beside_loop(gradients, tape: Tape, reverse: bool, dxp, dhp, dx, loop) -> dict:
    """loop(lo, hi, u0, u1, counts, me) over every row and unit on this thread, then the
    gradients (`gradients(tape, reverse, dxp, dhp, dx)`, `parameter_gradients`) of the
    steps it walked last; meanwhile another thread takes those of the steps it walked
    first, once it has. Each thread's products run in one block (`threads.alone`), and
    the halves' sums are added in one order."""
    T, B, _ = tape.x.shape
    H = tape.h.shape[2]
    first = (T + 1) // 2  # steps the loop walks before the other thread starts
    walked = [slice(T - first, T), slice(0, T - first)]  # first, then last
    if reverse:
        walked = [slice(0, first), slice(first, T)]
    counts = barrier.progress(1)
    halves, failed = [None, None], []

    def of_steps(part: slice) -> dict:
        states = slice(part.start, part.stop + 1)
        piece = tape._replace(
            x=tape.x[part], h=tape.h[states], c=tape.c[states], saved=tape.saved[part]
        )
        dxp_part = dxp[part]
        dhp_part = dxp_part if dhp is dxp else dhp[part]
        with threads.alone():
            return gradients(piece, reverse, dxp_part, dhp_part, dx[part])

    def run(k):
        if k == 1:
            # Polled, not asleep on the count: the loop would wake a sleeper at every step.
            while counts[0] < first:
                time.sleep(POLL_SECONDS)
            barrier.wait_for(counts, first)  # the count read atomically, as the loop wrote it
            if not failed:
                halves[0] = of_steps(walked[0])
            return
        try:
            loop(0, B, 0, H, counts, 0)
        except BaseException:
            failed.append(True)
            barrier.arrive(counts, 0, T)  # the other thread waits no more; the error is raised
            raise
        halves[1] = of_steps(walked[1])

    threads.together(run, 2)
    return {name: halves[0][name] + halves[1][name] for name in halves[0]}


def layer_forward(
    cell: Cell, params: dict, x, h0, c0, reverse: bool, out, out_offset: int,
    parallel_scan: bool = False, keep: bool = True, reuse: Tape | None = None,
) -> Tape:  # fmt: skip
    """`Backend.layer_forward`: x projected first (`threads.matmul`), then the time loop
    or, where asked and it splits time (`scan.splits_time`), the scan.

    Where the steps multiply packed weights and the loop's threads each take enough rows
    (`_projects_in_loop`), each thread computes its rows' input products in the loop
    instead, a chunk of steps at a time (`_chunk_steps`), so the projection never
    goes through memory. Without `keep` the loop's states and saved activations are
    rings of 2 and 1 steps, which stay in cache (the Tape then holds the final state
    only). The tape takes the arrays of `reuse` where their shapes fit: fresh memory
    costs a page fault per 4 KiB on its first touch (LSTM 100,32,128: its 10 MB
    tape, 1.5-2 ms of a 5 ms forward).
    """
    T, B, _ = x.shape
    H = h0.shape[1]
    dtype = x.dtype
    GH = cell.gates * H
    parallel_scan = parallel_scan and scan.splits_time(T, B)  # else the step loop
    in_loop = not parallel_scan and _projects_in_loop(cell, T, B, H, dtype)
    ahead = not (parallel_scan or in_loop) and _projects_ahead(cell, T, B, H, dtype, x.shape[2])
    with _layer_call():
        if not in_loop:
            x_proj = np.empty((T, B, GH), dtype)
        if not (in_loop or ahead):
            matmul(rows(x), params["weight_ih"].T, rows(x_proj), bias=params["bias_ih"])
        steps = T if keep or parallel_scan else 1
        h = reused(reuse and reuse.h, (steps + 1, B, H), dtype, np.empty)
        first, last = (T % h.shape[0], 0) if reverse else (0, T % h.shape[0])
        h[first] = h0
        c_shape = (steps + 1, B, H if cell.has_cell_state else 0)
        c = reused(reuse and reuse.c, c_shape, dtype, np.empty)
        if cell.has_cell_state:
            c[first] = c0
        saved = reused(reuse and reuse.saved, (steps, B, cell.saved * H), dtype, np.empty)
        if parallel_scan:
            scan.forward(cell, reverse, x_proj, h, saved, out, out_offset)
            return Tape(x, h, c, saved, True)
        forward, _ = time_loops(cell)
        product = step_product(cell, B, H)
        w_ih, b_ih = params["weight_ih"], params["bias_ih"]
        w_hh, w_hh_t = _recurrent_weight(cell, params, product)
        b_hh = params.get("bias_hh", _empty(dtype))
        chunk = _chunk_steps(cell, T, B, H, dtype) if in_loop else 0
        bounds = _unit_bounds(H) if _splits_units(cell, B, H, dtype) else [(0, H)]
        split = len(bounds) > 1

        blocks = functools.partial(_gate_blocks, H=H) if split else (lambda a, u0, u1: [a])
        requests = {}
        for k, (u0, u1) in enumerate(bounds):
            if in_loop:
                requests[f"W_ih {k}"] = (blocks(w_ih, u0=u0, u1=u1), True)
            if _takes_packed(cell, B, H):
                requests[f"W_hh^T {k}"] = (blocks(w_hh, u0=u0, u1=u1), True)
        packed = _pack_all(requests)

        def thread_part(k, u0, u1):
            """Thread k's packed weights, biases and buffers: where the units are split,
            its units' gates together; else one part for every block of rows."""
            gates = (lambda a: _gates_of(a, H, u0, u1)) if split else (lambda a: a)
            G_n, S_n = cell.gates * (u1 - u0), cell.saved * (u1 - u0)
            buffer = functools.partial(_buffer, k)
            return (
                packed.get(f"W_ih {k}", _empty(dtype)),
                gates(b_ih),
                buffer("chunk", (chunk, B, G_n), dtype) if in_loop else x_proj,
                packed.get(f"W_hh^T {k}", _empty(dtype)),
                gates(b_hh),
                buffer("h_proj", (B, G_n), dtype),
                buffer("xp_units", (B, G_n if split and not in_loop else 0), dtype),
                buffer("saved_units", (B, S_n if split else 0), dtype),
            )

        per_thread = [thread_part(k, u0, u1) for k, (u0, u1) in enumerate(bounds)]

        def loop(lo, hi, u0, u1, counts, me):
            packed_ih, b_ih, x_proj, packed, b_hh, h_proj, xp_units, saved_units = per_thread[me]
            forward(
                reverse, product, lo, hi, u0, u1, counts, me, x, packed_ih, b_ih, x_proj, w_hh,
                w_hh_t, packed, b_hh, h, c, saved, h_proj, xp_units, saved_units, out, out_offset,
            )  # fmt: skip

        if ahead:
            _run_beside_projection(reverse, x, params, x_proj, H, loop)
        else:
            _run_loop(cell, T, B, H, bounds if split else None, loop)
        if keep:
            return Tape(x, h, c, saved, False)
        return Tape(x, h[last : last + 1], c[last : last + 1], saved, False)


def layer_backward(
    cell: Cell, params: dict, tape: Tape, reverse: bool, dy, dy_offset: int, dh_n, dc_n, dx
):
    """`Backend.layer_backward`: the time loop's mirror (or the scan's), then the
    parameter gradients by blocks of large products (`threads`)."""
    with _layer_call():
        T, B, _ = tape.x.shape
        H = tape.h.shape[2]
        dtype = tape.x.dtype
        # The loop assigns each dh[t] before it adds the product onto it: no zeroing.
        dh = (np.zeros if tape.parallel_scan else np.empty)((T + 1, B, H), dtype)
        dh[0 if reverse else T] = dh_n
        dc = np.array(dc_n if cell.has_cell_state else np.zeros((B, H)), dtype)
        GH = cell.gates * H
        # The loops write whole rows (C-contiguous); the products read the first GH columns.
        dxp_padded = np.empty((T, B, padded_row(GH, dtype)), dtype)
        dhp_padded = dxp_padded if cell.one_gradient else np.empty_like(dxp_padded)
        dxp = dxp_padded[:, :, :GH]
        dhp = dxp if cell.one_gradient else dhp_padded[:, :, :GH]
        gradients = functools.partial(parameter_gradients, sys.modules[__name__], cell, params)
        if tape.parallel_scan:
            scan.backward(cell, reverse, tape.h, tape.saved, dy, dy_offset, dh, dxp_padded)
            grads = gradients(tape, reverse, dxp, dhp, dx)
        else:
            _, backward = time_loops(cell)
            product = step_product(cell, B, H)
            w_hh, w_hh_t = _recurrent_weight(cell, params, product)
            G, S = cell.gates, cell.saved
            bounds = _unit_bounds(H) if _splits_units(cell, B, H, dtype) else None
            if bounds:  # W_hh's columns of each thread's units
                requests = {
                    f"W_hh {k}": ([w_hh[:, u0:u1]], False) for k, (u0, u1) in enumerate(bounds)
                }
                units = [u1 - u0 for u0, u1 in bounds]
            else:
                requests = {"W_hh 0": ([w_hh], False)} if _takes_packed(cell, B, H) else {}
                units = [0]
            packed = _pack_all(requests)
            packs = [packed.get(f"W_hh {k}", _empty(dtype)) for k in range(len(units))]
            one = cell.one_gradient  # no dhp_units, and a row to discard
            names = (("saved_units", S), ("dxp_units", G), ("dhp_units", 0 if one else G))
            buffers = [
                [_buffer(k, name, (B, size * n), dtype) for name, size in names]
                + [_buffer(k, "discard", (B, G * (n or H) if one else 0), dtype)]
                for k, n in enumerate(units)
            ]

            def loop(lo, hi, u0, u1, counts, me):
                backward(
                    reverse, product, lo, hi, u0, u1, counts, me, w_hh, w_hh_t, packs[me],
                    tape.h, tape.c, tape.saved, dy, dy_offset, dh, dc, dxp_padded, dhp_padded,
                    *buffers[me],
                )  # fmt: skip

            if _gradients_behind(cell, T, B, H, dtype, tape.x.shape[2]):
                grads = _gradients_beside_loop(gradients, tape, reverse, dxp, dhp, dx, loop)
            else:
                _run_loop(cell, T, B, H, bounds, loop)
                grads = gradients(tape, reverse, dxp, dhp, dx)
        dh0 = dh[T if reverse else 0]
        return grads, dh, dh0, (dc if cell.has_cell_state else None)
