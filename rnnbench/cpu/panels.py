"""Products out += a @ b (or out = a @ b + bias) against a b packed in panels, by a
register-blocked kernel compiled here: the time loops' step products (`add_bias` in
the forward, `accumulate` in the backward) and, where oneMKL is not loaded, the
layers' large products (`multiply`, by `rnnbench.cpu.threads`).

One step's product h @ W_hh^T is small (a block of batch rows) and repeats T
times with the same weight, so the weight is packed once per layer call: b: [K,N]
as panels of `panel_width` columns (two SIMD vectors of 64 bytes), each panel's K
rows of them contiguous, the last one padded with zeros. A tile of up to
`TILE_ROWS` rows of out by one panel keeps its 2 x TILE_ROWS vectors of sums in
registers through the K products and adds them once to out (or to a bias row,
into out: `add_bias`): per k, two vector loads of the panel, one broadcast of
a[m, k] per row and 16 fused multiply-adds.
LLVM lowers the 64-byte vectors to what the machine has (AVX-512, or twice AVX2).

One core, float32, a compiled loop of 200 steps, on this project's AMD EPYC
(Zen 4) machine, whose NumPy sgemm 1024^3 reaches 96 GFLOP/s on one core:
108-115 GFLOP/s at M=4-64, K=128-512, N=512-2048, where oneMKL's packed GEMM
(`cblas_sgemm_compute`, the loops' product before) reached 65-92 and OpenBLAS
28-86 (46-51 at M=16). One row (batch 1) reaches 49 (oneMKL 32), bound by L2:
two vector loads a pair of multiply-adds (tiles over four panels at once, eight
chains of sums, reached no more).
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..jit import cpu_kernel

VECTOR_BYTES = 64
VECTORS = 2  # a panel's width in vectors
TILE_ROWS = 8  # rows of a tile: 2 x 8 vector sums, half of AVX-512's 32 registers


def panel_width(dtype) -> int:
    """Columns of a panel: 32 float32 or 16 float64."""
    return VECTORS * VECTOR_BYTES // np.dtype(dtype).itemsize


def packed_size(shape: tuple[int, int], dtype) -> int:
    """Elements of `pack`'s result for b: [K,N] of `dtype`."""
    K, N = shape
    width = panel_width(dtype)
    return -(-N // width) * width * K


def _tile(rows: int):
    """An intrinsic tile(a, a_start, lda, ka, packed, panel_start, K, out, out_start, ldc,
    base, base_start, ldb): out[m, j] = base[m, j] + sum over k < K of a[m, k] *
    panel[k, j] for m < rows and the panel's columns j, with a[m, k] at a_start + m *
    lda + k * ka, panel[k, j] at panel_start + k * width + j of `packed`, out[m, j] at
    out_start + m * ldc + j and base[m, j] at base_start + m * ldb + j (elements from
    each array's first element: any view, out's and base's rows contiguous). base is
    out itself (the sums add onto it) or a bias under every row (ldb 0), which saves
    setting out first (LSTM 50,64,256 inference: a pass over the gates each step, 2%
    of its time)."""

    @intrinsic
    def tile(
        typingctx, a, a_start, lda, ka, packed, panel_start, K, out, out_start, ldc, base,
        base_start, ldb,
    ):  # fmt: skip
        signature = types.void(
            a, a_start, lda, ka, packed, panel_start, K, out, out_start, ldc, base, base_start,
            ldb,
        )  # fmt: skip

        def codegen(context, builder, signature, args):
            a_start, lda, ka, panel_start, K, out_start, ldc, base_start, ldb = (
                args[i] for i in (1, 2, 3, 5, 6, 8, 9, 11, 12)
            )
            a, packed, out, base = (
                context.make_array(signature.args[i])(context, builder, args[i]).data
                for i in (0, 4, 7, 10)
            )
            dtype = signature.args[0].dtype
            lanes, align = VECTOR_BYTES * 8 // dtype.bitwidth, dtype.bitwidth // 8
            vector = ir.VectorType(context.get_value_type(dtype), lanes)
            fma = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(vector, [vector] * 3),
                f"llvm.fma.v{lanes}f{dtype.bitwidth}",
            )
            zero = ir.Constant(vector, [0.0] * lanes)

            def integer(value):
                return ir.Constant(ir.IntType(64), value)

            def vector_at(pointer, *terms):  # the vector at pointer + sum(terms)
                index = terms[0]
                for term in terms[1:]:
                    index = builder.add(index, term)
                return builder.bitcast(builder.gep(pointer, [index]), vector.as_pointer())

            def splat(scalar):
                one = builder.insert_element(ir.Constant(vector, ir.Undefined), scalar, integer(0))
                everywhere = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
                return builder.shuffle_vector(one, ir.Constant(vector, ir.Undefined), everywhere)

            entry = builder.basic_block
            loop = builder.append_basic_block("tile.k")
            done = builder.append_basic_block("tile.done")
            builder.cbranch(builder.icmp_signed(">", K, integer(0)), loop, done)

            # for k in range(K): sums[m][v] += a[m, k] * panel[k, v-th vector], in registers
            builder.position_at_end(loop)
            k = builder.phi(ir.IntType(64))
            sums = [[builder.phi(vector) for _ in range(VECTORS)] for _ in range(rows)]
            row = builder.add(panel_start, builder.mul(k, integer(VECTORS * lanes)))
            panel = [
                builder.load(vector_at(packed, row, integer(v * lanes)), align=align)
                for v in range(VECTORS)
            ]
            added = []
            for m in range(rows):
                a_mk = builder.gep(
                    a,
                    [
                        builder.add(
                            a_start, builder.add(builder.mul(integer(m), lda), builder.mul(k, ka))
                        )
                    ],
                )
                a_mk = splat(builder.load(a_mk))
                added.append(
                    [builder.call(fma, [a_mk, panel[v], sums[m][v]]) for v in range(VECTORS)]
                )
            k_next = builder.add(k, integer(1))
            end = builder.basic_block
            k.add_incoming(integer(0), entry)
            k.add_incoming(k_next, end)
            builder.cbranch(builder.icmp_signed("<", k_next, K), loop, done)

            # out[m, v-th vector] = base[m, v-th vector] + sums[m][v] (the sums 0 where K is 0)
            builder.position_at_end(done)
            totals = [[builder.phi(vector) for _ in range(VECTORS)] for _ in range(rows)]
            for m in range(rows):
                for v in range(VECTORS):
                    sums[m][v].add_incoming(zero, entry)
                    sums[m][v].add_incoming(added[m][v], end)
                    totals[m][v].add_incoming(zero, entry)
                    totals[m][v].add_incoming(added[m][v], end)
                    under = vector_at(
                        base, base_start, builder.mul(integer(m), ldb), integer(v * lanes)
                    )
                    under = builder.load(under, align=align)
                    column = builder.add(builder.mul(integer(m), ldc), integer(v * lanes))
                    pointer = vector_at(out, out_start, column)
                    builder.store(builder.fadd(under, totals[m][v]), pointer, align=align)
            return context.get_dummy_value()

        return signature, codegen

    return tile


_tile8, _tile4, _tile2, _tile1 = (_tile(rows) for rows in (TILE_ROWS, 4, 2, 1))

# Blocks of a large product (`multiply`) that stay in cache while its tiles run: M_BLOCK
# rows of a by K_BLOCK steps of k (128 KiB of float32, in L2), against a panel's
# K_BLOCK rows at a time (32 KiB, in L1).
M_BLOCK, K_BLOCK = 128, 256


@cpu_kernel
def accumulate(a, packed, out):
    """out += a @ b for a: [M,K] (any strides: a transpose too), out: [M,N] with contiguous
    rows, b: [K,N] packed by `pack` in `packed`."""
    _accumulate_steps(a, packed, out, 0, a.shape[1], out)


@cpu_kernel
def add_bias(a, packed, bias, out):
    """out = a @ b + bias, bias: [N] (contiguous; a wrong length raises); otherwise as
    `accumulate` (one pass over k: a time step's product, whose sums stay in registers
    through all of K)."""
    _accumulate_steps(a, packed, out, 0, a.shape[1], bias.reshape((1, out.shape[1])))


@cpu_kernel
def multiply(a, packed, bias, add, out):
    """out = a @ b + bias (bias: [N], or [0] for none), or out += a @ b where `add`; as
    `accumulate`, by blocks of M_BLOCK rows and K_BLOCK steps, the first block of steps
    setting its rows of out (from the bias) unless `add`."""
    M, K = a.shape
    N = out.shape[1]
    first = bias.reshape((1, N)) if bias.size else np.zeros((1, N), out.dtype)
    for m0 in range(0, M, M_BLOCK):
        rows, block = out[m0 : m0 + M_BLOCK], a[m0 : m0 + M_BLOCK]
        for k0 in range(0, max(K, 1), K_BLOCK):  # one block where K is 0: out set
            k1 = min(K, k0 + K_BLOCK)
            if k0 == 0 and not add:
                _accumulate_steps(block, packed, rows, k0, k1, first)
            else:
                _accumulate_steps(block, packed, rows, k0, k1, rows)


@cpu_kernel
def _accumulate_steps(a, packed, out, k0, k1, base):
    """out = base + a[:, k0:k1] @ b[k0:k1] (as in `accumulate`), base: out itself, or [1,N]
    under every row: each full panel by tiles of 8 rows, then 4, 2 and 1; the columns
    of a last, partial panel by a plain loop."""
    M, N = out.shape
    K = a.shape[1]
    width = VECTORS * VECTOR_BYTES // out.itemsize
    lda, ka = a.strides[0] // a.itemsize, a.strides[1] // a.itemsize
    ldc = out.strides[0] // out.itemsize
    ldb = base.strides[0] // base.itemsize if base.shape[0] > 1 else 0
    steps, a_k0 = k1 - k0, k0 * ka
    for p in range(N // width):
        start, column = (p * K + k0) * width, p * width
        m = 0
        while m + TILE_ROWS <= M:
            a_m, out_m, base_m = m * lda + a_k0, m * ldc + column, m * ldb + column
            _tile8(a, a_m, lda, ka, packed, start, steps, out, out_m, ldc, base, base_m, ldb)
            m += TILE_ROWS
        if M - m >= 4:
            a_m, out_m, base_m = m * lda + a_k0, m * ldc + column, m * ldb + column
            _tile4(a, a_m, lda, ka, packed, start, steps, out, out_m, ldc, base, base_m, ldb)
            m += 4
        if M - m >= 2:
            a_m, out_m, base_m = m * lda + a_k0, m * ldc + column, m * ldb + column
            _tile2(a, a_m, lda, ka, packed, start, steps, out, out_m, ldc, base, base_m, ldb)
            m += 2
        if M - m >= 1:
            a_m, out_m, base_m = m * lda + a_k0, m * ldc + column, m * ldb + column
            _tile1(a, a_m, lda, ka, packed, start, steps, out, out_m, ldc, base, base_m, ldb)
    n0 = N - N % width
    for m in range(M):
        under = base[m if ldb else 0]  # out's own row where base is out
        for j in range(N - n0):
            out[m, n0 + j] = under[n0 + j]
        for k in range(k0, k1):
            a_mk = a[m, k]
            for j in range(N - n0):
                out[m, n0 + j] += a_mk * packed[n0 * K + k * width + j]


def pack(b: np.ndarray, out: np.ndarray) -> None:
    """out[(p * K + k) * width + j] = b[k, p * width + j], or 0 past b's N columns: b: [K,N]
    (any strides) packed in panels for `accumulate`, into out: [`packed_size`]. A
    transpose (a weight's rows) is transposed by blocks in registers (`_pack_columns`);
    rows are copied by NumPy, 32 contiguous elements at a time (an 8 MiB x of IndRNN's
    weight gradient: 0.5 ms, 2.2 compiled)."""
    K, N = b.shape
    width = panel_width(b.dtype)
    full, count = N // width, -(-N // width)
    panels = out.reshape(count, K, width)
    if b.strides[0] < b.strides[1]:  # columns contiguous
        _pack_columns(b, panels)
    else:
        panels[:full] = b[:, : full * width].reshape(K, full, width).transpose(1, 0, 2)
        panels[full:, :, : N - full * width] = b[:, full * width :]
    panels[full:, :, N - full * width :] = 0


@intrinsic
def _transpose(typingctx, src, src_start, lds, dst, dst_start, ldd):
    """transpose(src, src_start, lds, dst, dst_start, ldd): the square block of L x L
    elements (L = a vector's lanes: 16 float32, 8 float64) whose row r is src's L
    elements from src_start + r * lds, stored transposed: its column c as dst's L
    elements from dst_start + c * ldd (offsets in elements from each array's first).

    L vector loads, log2(L) rounds of L two-vector shuffles (each round swaps the
    off-diagonal blocks of every diagonal block, halving their size), L stores."""
    signature = types.void(src, src_start, lds, dst, dst_start, ldd)

    def codegen(context, builder, signature, args):
        src_start, lds, dst_start, ldd = args[1], args[2], args[4], args[5]
        src, dst = (
            context.make_array(signature.args[i])(context, builder, args[i]).data for i in (0, 3)
        )
        dtype = signature.args[0].dtype
        lanes, align = VECTOR_BYTES * 8 // dtype.bitwidth, dtype.bitwidth // 8
        vector = ir.VectorType(context.get_value_type(dtype), lanes)

        def vector_at(pointer, start, row, stride):
            index = builder.add(start, builder.mul(ir.Constant(ir.IntType(64), row), stride))
            return builder.bitcast(builder.gep(pointer, [index]), vector.as_pointer())

        def mask(indices):
            return ir.Constant(ir.VectorType(ir.IntType(32), lanes), indices)

        rows = [builder.load(vector_at(src, src_start, r, lds), align=align) for r in range(lanes)]
        half = lanes // 2
        while half:  # rows i and i + half trade their columns c + half and c
            low = mask([c if c & half == 0 else lanes + c - half for c in range(lanes)])
            high = mask([c + half if c & half == 0 else lanes + c for c in range(lanes)])
            for i in (i for i in range(lanes) if i & half == 0):
                upper, lower = rows[i], rows[i + half]
                rows[i] = builder.shuffle_vector(upper, lower, low)
                rows[i + half] = builder.shuffle_vector(upper, lower, high)
            half //= 2
        for c, row in enumerate(rows):
            builder.store(row, vector_at(dst, dst_start, c, ldd), align=align)
        return context.get_dummy_value()

    return signature, codegen


@cpu_kernel
def _pack_columns(b, panels):
    """panels[p, k, j] = b[k, p * width + j] for b's N columns: where b's columns are
    contiguous, blocks of L columns by L steps of k transposed in registers
    (`_transpose`; an LSTM's W_ih^T at H=512, 4 MiB: 1.2 ms a column at a time,
    0.16 so), the rest (and other strides) an element at a time."""
    K, N = b.shape
    width = panels.shape[2]
    lanes = VECTOR_BYTES // b.itemsize
    ldb = b.strides[1] // b.itemsize  # between b's columns
    blocks = b.strides[0] == b.itemsize
    k_blocked = K - K % lanes if blocks else 0
    for p in range(panels.shape[0]):
        columns = min(width, N - p * width)
        j_blocked = columns - columns % lanes if blocks else 0
        for j0 in range(0, j_blocked, lanes):
            for k0 in range(0, k_blocked, lanes):
                start = (p * width + j0) * ldb + k0
                _transpose(b, start, ldb, panels, (p * K + k0) * width + j0, width)
        for j in range(columns):
            for k in range(k_blocked if j < j_blocked else 0, K):
                panels[p, k, j] = b[k, p * width + j]
