"""The time loops' step product (`rnnbench.cpu.panels`): a register-blocked kernel against
a weight packed in panels, checked against NumPy's float64 product.

Error bound: each entry of out + a @ b is a sum of K products added to out, in some
order, each rounded once (fused multiply-adds): |error| <= (K + 1) u (|out| + |a| @ |b|)
with u the unit roundoff (2^-24 for float32, 2^-53 for float64), the standard bound
for a dot product; the tests allow twice that. A wrong index, a lost panel, tile or
remainder errs by whole products, far above it.
"""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from strategies import scaled

from rnnbench.cpu import panels


def _packed(b):
    packed = np.full(panels.packed_size(b.shape, b.dtype), np.nan, b.dtype)
    panels.pack(b, packed)
    return packed


@scaled(0.5)
@given(
    M=st.integers(1, 20),  # tiles of 8, 4, 2 and 1 rows
    K=st.integers(0, 40),
    N=st.integers(1, 80),  # full panels (32 or 16 columns) and a partial one
    dtype=st.sampled_from([np.float32, np.float64]),
    transposed=st.booleans(),  # b a transpose (a weight's rows), or rows as they are
    bias=st.booleans(),  # add_bias: out set to bias + a @ b, whatever out held
    seed=st.integers(0, 2**32 - 1),
)
def test_a_packed_product_adds_a_times_b_onto_out_or_a_bias(
    M, K, N, dtype, transposed, bias, seed
):
    rng = np.random.default_rng(seed)
    # a and out with rows further apart than their width (a thread's rows and units)
    a = rng.standard_normal((M, K + 3)).astype(dtype)[:, 1 : K + 1]
    b = (
        rng.standard_normal((N, K)).astype(dtype).T
        if transposed
        else rng.standard_normal((K, N)).astype(dtype)
    )
    wide = rng.standard_normal((M, N + 5)).astype(dtype)
    out = wide[:, 2 : N + 2]
    before = wide.copy()
    c = rng.standard_normal(N).astype(dtype)
    under = np.broadcast_to(c, out.shape) if bias else out.copy()
    expected = under.astype(np.float64) + a.astype(np.float64) @ b.astype(np.float64)
    if bias:
        panels.add_bias(a, _packed(b), c, out)
    else:
        panels.accumulate(a, _packed(b), out)
    u = np.finfo(dtype).eps / 2
    bound = 2 * (K + 1) * u * (np.abs(under) + np.abs(a) @ np.abs(b))
    assert np.all(np.abs(out - expected) <= bound)
    np.testing.assert_array_equal(wide[:, :2], before[:, :2])  # nothing outside out
    np.testing.assert_array_equal(wide[:, N + 2 :], before[:, N + 2 :])


@scaled(0.5)
@given(
    K=st.integers(1, 70),  # blocks of 16 (float32) or 8 (float64) steps of k, and the rest
    N=st.integers(1, 100),  # blocks of as many columns in full and partial panels, the rest
    dtype=st.sampled_from([np.float32, np.float64]),
    layout=st.sampled_from(["rows", "transposed", "strided transpose"]),
)
def test_a_pack_lays_out_every_element_of_b(K, N, dtype, layout):
    """Exactly, whether b's rows are contiguous, or its columns (a weight's transpose,
    transposed by blocks in registers), or neither."""
    values = np.arange(2 * K * N, dtype=dtype)
    b = {
        "rows": values[: K * N].reshape(K, N),
        "transposed": values[: K * N].reshape(N, K).T,
        "strided transpose": values.reshape(N, 2 * K)[:, ::2].T,
    }[layout]
    width = panels.panel_width(dtype)
    expected = np.zeros((-(-N // width), K, width), dtype)
    for p in range(expected.shape[0]):
        columns = b[:, p * width : (p + 1) * width]
        expected[p, :, : columns.shape[1]] = columns
    np.testing.assert_array_equal(_packed(b), expected.ravel())


def test_a_pack_pads_its_last_panel_with_zeros():
    b = np.arange(3 * 40, dtype=np.float32).reshape(3, 40)  # a full panel of 32, then 8
    packed = _packed(b).reshape(2, 3, 32)
    np.testing.assert_array_equal(packed[0], b[:, :32])
    np.testing.assert_array_equal(packed[1, :, :8], b[:, 32:])
    np.testing.assert_array_equal(packed[1, :, 8:], 0)


@scaled(0.5)
@given(
    M=st.integers(1, 300),  # more than one block of rows (M_BLOCK)
    K=st.integers(0, 600),  # and of steps (K_BLOCK)
    N=st.integers(1, 70),
    dtype=st.sampled_from([np.float32, np.float64]),
    bias=st.booleans(),
    add=st.booleans(),
    transposed=st.booleans(),  # a a transpose (a weight gradient's rows of time)
    seed=st.integers(0, 2**32 - 1),
)
def test_a_large_product_sets_or_adds_a_times_b(M, K, N, dtype, bias, add, transposed, seed):
    rng = np.random.default_rng(seed)
    a = (
        rng.standard_normal((K, M)).astype(dtype).T
        if transposed
        else rng.standard_normal((M, K)).astype(dtype)
    )
    b = rng.standard_normal((K, N)).astype(dtype)
    c = rng.standard_normal(N).astype(dtype) if bias else np.zeros(0, dtype)
    out = rng.standard_normal((M, N)).astype(dtype)
    before = out.astype(np.float64) if add else (c.astype(np.float64) if bias else 0.0)
    expected = before + a.astype(np.float64) @ b.astype(np.float64)
    panels.multiply(a, _packed(b), c, add, out)
    u = np.finfo(dtype).eps / 2
    bound = 2 * (K + 1) * u * (np.abs(before) + np.abs(a) @ np.abs(b))
    assert np.all(np.abs(out - expected) <= bound)
