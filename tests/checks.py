"""Checks shared by the tests: finite-difference gradients through the public API in
float64, and array comparisons with their tolerances.

L = sum(dy * y) + sum(dstate * state), so that every output path is checked.

Step and tolerance. Central differences with eps = 1e-6, as
torch.autograd.gradcheck in float64. Error model of (L(p + eps v) - L(p - eps v)) / (2 eps)
against the directional derivative along a unit vector v:
  - truncation: eps^2 / 6 |L'''| = O(1e-12) times the size of L's terms;
  - rounding: each evaluation of L carries a relative error of a few
    machine epsilons of `scale`, the sum of |terms| of L, divided by 2 eps:
    about macheps / eps * scale = 2.2e-10 * scale.
`tolerance(scale)` allows 100 times the sum of both, 2.2e-8 * (1 + scale): far above
the error of correct BPTT (below 1e-8 seen, tests/largest_errors.py), far below any
wrong term (a wrong gate derivative, index or sign errs by the size of the gradient
itself, O(1e-2) or more). ReLU's kink: a pre-activation within eps of 0 would make a
difference straddle it; the drawn values are continuous, so that has probability
~1e-6 per pre-activation.
"""

import numpy as np
from strategies import like, parts, state_keys

EPS = 1e-6
MACHEPS = np.finfo(np.float64).eps
SAFETY = 100.0


def tolerance(scale: float) -> float:
    """Allowed |finite difference - BPTT| for a loss whose terms sum to `scale` in size."""
    return SAFETY * (EPS**2 + MACHEPS / EPS) * (1.0 + scale)


def variables(model, x, state) -> dict:
    """Everything BPTT differentiates, keyed as `model.backward` returns it."""
    named = dict(model.params)
    named["input"] = x
    named.update(zip(state_keys(state), parts(state), strict=True))
    return named


def bptt(arch: str, case):
    """(model, arrays, grads, variables) of one float64 forward and backward of `case`.

    grads come from the package's BPTT of L; checks they have every variable's key.
    """
    model = case.model(arch)
    arrays = case.arrays(model)
    model.forward(arrays.x, arrays.state)
    grads = model.backward(arrays.dy, arrays.dstate)
    named = variables(model, arrays.x, arrays.state)
    assert set(grads) == set(named)
    return model, arrays, grads, named


def loss(model, named: dict, dy, dstate) -> tuple[float, float]:
    """(L, scale) at the point `named` (as `variables` returns); sets model.params."""
    model.params = {key: named[key] for key in model.params}
    state = like(dstate, [named[key] for key in state_keys(dstate)])
    y, final = model.forward(named["input"], state)
    terms = [dy * y] + [d * s for d, s in zip(parts(dstate), parts(final), strict=True)]
    return (
        float(sum(np.sum(term) for term in terms)),
        float(sum(np.sum(np.abs(term)) for term in terms)),
    )


def directional_difference(model, named: dict, direction: dict, dy, dstate):
    """(central difference of L along `direction`, scale of L); restores model.params."""
    params = dict(model.params)
    plus = {key: value + EPS * direction[key] for key, value in named.items()}
    minus = {key: value - EPS * direction[key] for key, value in named.items()}
    (l_plus, scale_plus), (l_minus, scale_minus) = (
        loss(model, plus, dy, dstate),
        loss(model, minus, dy, dstate),
    )
    model.params = params
    return (l_plus - l_minus) / (2 * EPS), max(scale_plus, scale_minus)


def elementwise_differences(model, named: dict, dy, dstate):
    """({key: central differences of L per element}, largest scale of L); restores params."""
    zero = {key: np.zeros_like(value) for key, value in named.items()}
    gradients, scale = {}, 0.0
    for key, value in named.items():
        gradient = np.empty(value.shape)
        for index in np.ndindex(value.shape):
            zero[key][index] = 1.0
            gradient[index], scale_here = directional_difference(model, named, zero, dy, dstate)
            zero[key][index] = 0.0
            scale = max(scale, scale_here)
        gradients[key] = gradient
    return gradients, scale


# Tolerances of comparisons between results of the same math, relative to the
# largest magnitude compared (at least 1).
# SAME_MATH: float64 computed in another order (matrix products over other row
# counts, sums over chunks or rows): a few ulps per operation, 1e-12 leaves room
# for T steps and the sums over rows, and is a million times below a wrong term.
SAME_MATH = 1e-12
# FLOAT32: float32 against float64 of the same inputs: float32 rounds at 6e-8,
# errors grow by about one rounding per operation along <= 8 steps and 2 layers and
# by sqrt(n) in sums over n <= 100 rows: ~1e-5 at most; 1e-4 leaves a margin
# for amplification by the recurrence and still catches any lost precision or wrong term.
FLOAT32 = 1e-4


def assert_close(actual, desired, rtol: float, what: str = ""):
    """|actual - desired| <= rtol * max(1, max |desired|), elementwise; shapes equal."""
    desired = np.asarray(desired, np.float64)
    assert np.shape(actual) == desired.shape, (what, np.shape(actual), desired.shape)
    scale = max(1.0, float(np.max(np.abs(desired), initial=0.0)))
    np.testing.assert_allclose(
        np.asarray(actual, np.float64), desired, rtol=0, atol=rtol * scale, err_msg=what
    )
