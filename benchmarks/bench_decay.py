"""Gradient decay: log10 of |dL/dh_{T-d}| for distances d back from the last step T.

asv's graphs then show each architecture's vanishing or exploding gradients over commits.
"""

import numpy as np

from . import common

T, BATCH, HIDDEN = common.DECAY_SEQ_LEN, common.DECAY_BATCH, common.DECAY_HIDDEN

# The curve is checked at this distance against a separate BPTT run and a
# central difference with step FD_STEP. In float64 the difference's rounding
# error is about 1e-16 |L| / FD_STEP < 1e-9 (|L| <= B), its truncation error
# about FD_STEP^2 relative: hence the tolerances FD_ATOL and FD_RTOL.
CHECKED_DISTANCE = 16
FD_STEP = 1e-6
FD_ATOL = 1e-8
FD_RTOL = 1e-6


# gradient_norms squares the gradients' entries, so a norm is exact only
# inside WINDOW. Entries outside it are computed again for L scaled by SHIFT
# (or 1 / SHIFT): a power of two, so exactly, since gradients are linear in L.
# That moves the window 283 decades down (or up), keeps u * SHIFT finite,
# and leaves a few decades where both runs must agree.
WINDOW = (1e-145, 1e145)
SHIFT = 2.0**940


def decay_curve(arch: str) -> np.ndarray:
    """float64 [T+1]: entry k is log10 of the batch mean of |dL/dh_k|, L = sum(u * h_T), checked.

    Entries whose norm leaves float64's range even after scaling are -inf or inf.
    """
    net = common.model(arch, "cpu", HIDDEN, np.float64)
    x = common.sequence(T, BATCH, HIDDEN, np.float64)
    u = common.unit_rows(BATCH, HIDDEN)
    norms = net.gradient_norms(x, u=u)
    if not abs(norms[T] - 1.0) <= 1e-12:
        raise AssertionError(f"{arch}: |dL/dh_T| is {norms[T]!r}, not |u| = 1")
    _check_distance(arch, net, x, u, norms[T - CHECKED_DISTANCE])
    inside = _inside(norms)
    with np.errstate(divide="ignore"):
        curve = np.log10(norms)
    for scale in (SHIFT, 1 / SHIFT):
        if not (~inside & ((norms < WINDOW[0]) == (scale > 1))).any():
            continue
        with np.errstate(over="ignore", under="ignore", divide="ignore"):
            shifted = net.gradient_norms(x, u=scale * u)
            shifted_curve = np.log10(shifted) - np.log10(scale)
        moved = _inside(shifted)
        both = inside & moved
        if not np.allclose(shifted_curve[both], curve[both], rtol=0, atol=1e-12):
            raise AssertionError(f"{arch}: the curve for L scaled by {scale:g} is not the curve")
        curve = np.where(moved & ~inside, shifted_curve, curve)
        inside |= moved
    return curve


def _inside(norms: np.ndarray) -> np.ndarray:
    return (norms >= WINDOW[0]) & (norms <= WINDOW[1])


def _check_distance(arch: str, net, x, u, norm: float):
    """dL/dh_{T-d} is dL/dh0 of the run over the last d steps that starts from h_{T-d}."""
    head, tail = x[: T - CHECKED_DISTANCE], x[T - CHECKED_DISTANCE :]
    _, start = net.forward(head)
    lstm = isinstance(start, tuple)
    h_start = start[0] if lstm else start
    seed = u[None]  # dL/dh_T: [1,B,H]; dL/dc_T = 0

    def loss(shift: float) -> float:
        h = h_start + shift * common.unit_rows(BATCH, HIDDEN, "v")
        _, end = net.forward(tail, (h, start[1]) if lstm else h)
        return float(np.sum(u * (end[0] if lstm else end)[-1]))

    y, _ = net.forward(tail, start)
    dh = net.backward(np.zeros_like(y), (seed, np.zeros_like(seed)) if lstm else seed)["h0"][-1]
    separate = np.linalg.norm(dh, axis=1).mean()
    if not abs(separate - norm) <= 1e-12 * norm:
        raise AssertionError(
            f"{arch}: gradient_norms gives {norm!r} at distance {CHECKED_DISTANCE}, "
            f"a separate BPTT run {separate!r}"
        )
    exact = float(np.sum(dh * common.unit_rows(BATCH, HIDDEN, "v")))
    central = (loss(FD_STEP) - loss(-FD_STEP)) / (2 * FD_STEP)
    if not abs(central - exact) <= FD_RTOL * abs(exact) + FD_ATOL:
        raise AssertionError(
            f"{arch}: directional derivative at distance {CHECKED_DISTANCE} is {exact!r} "
            f"from BPTT, {central!r} from central differences"
        )


class GradientDecay:
    params = [common.ARCHS, common.DECAY_DISTANCES]
    param_names = ["arch", "distance"]
    timeout = 900

    def setup_cache(self):
        """Each architecture's checked curve, or the AssertionError its check raised."""
        curves = {}
        for arch in common.ARCHS:
            try:
                curves[arch] = decay_curve(arch)
            except AssertionError as error:
                curves[arch] = error
        return curves

    setup_cache.timeout = 1800

    def setup(self, curves, arch, distance):
        if isinstance(curves[arch], AssertionError):
            raise curves[arch]
        self.log10_norm = float(curves[arch][T - distance])

    def track_decay(self, curves, arch, distance):
        return self.log10_norm

    track_decay.unit = "log10(|dL/dh|)"
