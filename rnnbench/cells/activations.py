"""Scalar activations shared by the cells: exact in float64, fast and vectorisable in float32.

`tanh`, `sigmoid` and `exp` are typed per precision: float64 arguments take
libm's functions; float32 ones branch-free forms that LLVM can vectorise over
hidden units, where libm's are calls it cannot (exp on the CPU only: CUDA has
its own fast expf): for tanh (and sigmoid) a
rational approximation (max abs error 3.4e-7 against float64 tanh), for exp a
polynomial after range reduction, scaled by powers of 2 built from their bits
(against float64 e^x: within 5 ulp for x in (-87.3, 88.3), 10 ulp up to 88.72,
inf above; subnormal results within 3 units of 2^-149; libm's expf is a call per
element, 2.3 ns in cache against 0.65).
"""

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .._compat import compiling_for_cpu
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


def exp(x):
    """e^x: inf above the largest finite result, 0 below the least subnormal one.

    Called from Python, it is libm's, in x's NumPy type, as `tanh`.
    """
    return _like(x, math.inf if x > 709.78 else math.exp(x))


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


# Cephes' expf: e^x = 2^n e^r with n = round(x log2(e)) and |r| <= ln(2)/2, ln(2) in
# two parts so that r is exact; e^r = 1 + r + r^2 P(r) within 1 ulp of float32.
_LOG2E = np.float32(1.44269504088896341)
_LN2_HIGH, _LN2_LOW = np.float32(0.693359375), np.float32(-2.12194440e-4)
_EXP_POLYNOMIAL = tuple(
    np.float32(p)
    for p in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1)
)
_EXP_HALF = np.float32(5.0000001201e-1)
# Beyond these, e^x is inf or 0 in float32 (its largest finite value is e^88.72, its
# least subnormal e^-103.28); clamped there, n stays within [-150, 129], and is then
# held to 127 (r up to 0.97 there: e^x within 12 ulp for x in (88.38, 88.72], inf above).
_EXP_LOW, _EXP_HIGH = np.float32(-104.0), np.float32(89.0)
_EXP_MAX_POWER = 127
_EXPONENT_BIAS, _MANTISSA_BITS = 127, 23


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the low 32 bits of the integer `bits` (LLVM's
    bitcast, which vectorises, where a libm call such as ldexpf does not)."""

    def codegen(context, builder, signature, args):
        (value,) = args
        if value.type.width != 32:
            value = builder.trunc(value, ir.IntType(32))
        return builder.bitcast(value, ir.FloatType())

    return types.float32(bits), codegen


@gate
def _power_of_2_float32(k):
    """2^k for an integer -126 <= k <= 127, from its exponent bits."""
    return _float32_from_bits((k + _EXPONENT_BIAS) << _MANTISSA_BITS)


@gate
def _exp_float32(x):
    clamped = min(max(x, _EXP_LOW), _EXP_HIGH)
    n = min(math.floor(clamped * _LOG2E + _HALF), _EXP_MAX_POWER)
    n_float = np.float32(n)
    r = clamped - n_float * _LN2_HIGH - n_float * _LN2_LOW
    p = _EXP_POLYNOMIAL[0]
    p = p * r + _EXP_POLYNOMIAL[1]
    p = p * r + _EXP_POLYNOMIAL[2]
    p = p * r + _EXP_POLYNOMIAL[3]
    p = p * r + _EXP_POLYNOMIAL[4]
    p = p * r + _EXP_HALF
    e_r = p * (r * r) + r + ONE
    # 2^n in two normal float32 factors (2^n itself is subnormal below -126); their
    # product, whichever way fastmath's reassociation groups it, stays finite
    half = n >> 1
    value = e_r * _power_of_2_float32(half) * _power_of_2_float32(n - half)
    return value if x == x else x  # nan as nan: LLVM leaves n of a nan undefined


@gate_overload(exp)
def _exp(x):
    if x == types.float32 and compiling_for_cpu():  # CUDA's expf is fast as it is
        return lambda x: _exp_float32(x)
    return lambda x: math.exp(x)
