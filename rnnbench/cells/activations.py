"""Scalar activations shared by the cells: exact in float64, fast and vectorisable in float32.

`tanh` and `sigmoid` are typed per precision: float64 arguments take libm's
functions; float32 ones a branch-free rational approximation that LLVM can
vectorise over hidden units (max abs error 3.4e-7 against float64 tanh).
"""

import math

import numpy as np
from numba import types

from ..jit import gate, gate_overload

# Eigen's generic_fast_tanh_float: odd numerator, even denominator, on [-c, c].
_CLAMP = np.float32(7.90531110763549805)
_NUMERATOR = tuple(
    np.float32(a)
    for a in (
        -2.76076847742355e-16,
        2.00018790482477e-13,
        -8.60467152213735e-11,
        5.12229709037114e-08,
        1.48572235717979e-05,
        6.37261928875436e-04,
        4.89352455891786e-03,
    )
)
_DENOMINATOR = tuple(
    np.float32(b)
    for b in (
        1.19825839466702e-06,
        1.18534705686654e-04,
        2.26843463243900e-03,
        4.89352518554385e-03,
    )
)
_HALF = np.float32(0.5)

# 1 and 0 for the cells' gate math. Numba types a Python float literal as
# float64, which would turn float32 gate math into float64 (half the vector
# width, and conversions); float64 arguments promote these back exactly.
ONE = np.float32(1.0)
ZERO = np.float32(0.0)


def tanh(x):
    """tanh(x); see the module docstring for the float32 form.

    Called from Python (as the CUDA simulator runs the cells), it is libm's, in
    x's NumPy type, so that `ONE - y` stays float64 for float64 data (NEP 50
    makes float32 of a float32 scalar and a Python float).
    """
    return _like(x, math.tanh(x))


def sigmoid(x):
    """1 / (1 + exp(-x)), finite for every finite x of either sign.

    Called from Python, it runs the float64 form as plain Python, and returns
    x's NumPy type as `tanh` does.
    """
    return _like(x, _sigmoid_float64(x))


def _like(x, value):
    """value as x's NumPy floating type, or a Python float."""
    return x.dtype.type(value) if isinstance(x, np.floating) else float(value)


@gate
def _tanh_float32(x):
    x = min(max(x, -_CLAMP), _CLAMP)
    x2 = x * x
    p = _NUMERATOR[0]
    p = p * x2 + _NUMERATOR[1]
    p = p * x2 + _NUMERATOR[2]
    p = p * x2 + _NUMERATOR[3]
    p = p * x2 + _NUMERATOR[4]
    p = p * x2 + _NUMERATOR[5]
    p = p * x2 + _NUMERATOR[6]
    q = _DENOMINATOR[0]
    q = q * x2 + _DENOMINATOR[1]
    q = q * x2 + _DENOMINATOR[2]
    q = q * x2 + _DENOMINATOR[3]
    return x * p / q


@gate
def _sigmoid_float64(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@gate_overload(tanh)
def _tanh(x):
    if x == types.float32:
        return lambda x: _tanh_float32(x)
    return lambda x: math.tanh(x)


@gate_overload(sigmoid)
def _sigmoid(x):
    if x == types.float32:
        return lambda x: _HALF + _HALF * _tanh_float32(_HALF * x)
    return lambda x: _sigmoid_float64(x)
