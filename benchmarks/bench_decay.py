"""Gradient decay: log10 of |dL/dh_{T-d}| at every power of two d up to T, for several T.

asv's graphs then show each architecture's vanishing or exploding gradients over commits,
and DecayRate the one number a reader wants: the per-step decay rate.

The rule for a norm that is exactly zero (IndRNN's relu cuts every path within a few
steps): it has no logarithm, so track_decay skips it (asv: n/a, setup's
NotImplementedError says "no path"), DecayPath.track_path_steps records N, the
longest distance with a path, and the report shows "0, no path" for d > N. No
benchmark here returns an infinite or NaN value.
"""

import numpy as np

from . import common

BATCH, HIDDEN = common.DECAY_BATCH, common.DECAY_HIDDEN

# The slope is fitted where the curve has left the last step's transient and
# is not yet at h_0: distances 16 <= d <= T/2.
RATE_MIN_DISTANCE = 16

# Each curve is checked at every recorded distance against a separate BPTT:
# RNN.forward and RNN.backward over chunks of at most CHUNK steps, walking back
# from T with each row's dL/dh (and dL/dc) divided by its norm between chunks and
# the log10 of the divisors summed. Both BPTTs round a few times per step in
# float64, in other orders: their norms agreed to 3e-16 relative per step or
# better at every distance up to 4096 (every cell), and REL_PER_STEP allows about
# seven times that. A wrong step, gate or rescaling errs by the size of the gradient.
CHUNK = 256
REL_PER_STEP = 2e-15

# And at this distance against a central difference with step FD_STEP. In float64
# the difference's rounding error is about 1e-16 |L| / FD_STEP < 1e-9 (|L| <= B),
# its truncation error about FD_STEP^2 relative: hence FD_ATOL and FD_RTOL.
CHECKED_DISTANCE = 16
FD_STEP = 1e-6
FD_ATOL = 1e-8
FD_RTOL = 1e-6


def decay_curve(arch: str, seq_len: int) -> np.ndarray:
    """float64 [T+1]: entry k is log10 of the batch mean of |dL/dh_k|, L = sum(u * h_T),
    -inf where it is exactly zero; checked against a separate BPTT and central differences.
    """
    net = common.model(arch, "cpu", HIDDEN, np.float64)
    x = common.sequence(seq_len, BATCH, HIDDEN, np.float64)
    u = common.unit_rows(BATCH, HIDDEN)
    curve = net.gradient_norms(x, u=u, log10=True)
    if not abs(curve[seq_len]) <= 1e-12:
        raise AssertionError(f"{arch}: log10 |dL/dh_T| is {curve[seq_len]!r}, not log10 |u| = 0")
    distances = [d for d in common.DECAY_DISTANCES if d <= seq_len]
    for d, separate in separate_bptt(net, x, u, distances).items():
        got = curve[seq_len - d]
        agree = got == separate or abs(got - separate) <= REL_PER_STEP * d / np.log(10)
        if not agree:
            raise AssertionError(
                f"{arch}, T={seq_len}: log10 |dL/dh| at distance {d} is {got!r} from "
                f"gradient_norms, {separate!r} from a separate BPTT"
            )
    _check_central_difference(arch, net, x, u)
    return curve


def separate_bptt(net, x, u, distances: list[int]) -> dict[int, float]:
    """log10 of the batch mean of |dL/dh_{T-d}| for each d, by RNN.forward and RNN.backward
    over chunks of at most CHUNK steps (see CHUNK)."""
    T = len(x)
    starts = sorted({T - d for d in distances} | set(range(0, T, CHUNK)))
    states, state, done = {}, None, 0
    for start in starts:
        if start > done:
            _, state = net.forward(x[done:start], state)
            done = start
        states[start] = state
    lstm = isinstance(state, tuple)  # the state after T - 1 >= 1 steps
    dh, dc = u.copy(), np.zeros_like(u)
    log_scale = np.zeros(len(u))
    found, end = {}, T
    for start in reversed(starts):
        y, _ = net.forward(x[start:end], states[start])
        seed = (dh[None], dc[None]) if lstm else dh[None]
        grads = net.backward(np.zeros_like(y), seed)
        dh, dc = grads["h0"][0], grads["c0"][0] if lstm else dc
        size = np.maximum(np.linalg.norm(dh, axis=1), np.linalg.norm(dc, axis=1))
        path = size > 0
        dh[path] /= size[path, None]
        dc[path] /= size[path, None]
        with np.errstate(divide="ignore"):
            log_scale += np.log10(size)
            norms = np.log10(np.linalg.norm(dh, axis=1)) + log_scale
        if T - start in distances:
            top = norms.max()
            found[T - start] = (
                top + np.log10(np.mean(10.0 ** (norms - top))) if np.isfinite(top) else -np.inf
            )
        end = start
    return found


def _check_central_difference(arch: str, net, x, u):
    """<dL/dh_{T-d}, v> from BPTT over the last d steps against a central difference."""
    T = len(x)
    head, tail = x[: T - CHECKED_DISTANCE], x[T - CHECKED_DISTANCE :]
    _, start = net.forward(head)
    lstm = isinstance(start, tuple)
    h_start = start[0] if lstm else start
    v = common.unit_rows(BATCH, HIDDEN, "v")

    def loss(shift: float) -> float:
        h = h_start + shift * v
        _, end = net.forward(tail, (h, start[1]) if lstm else h)
        return float(np.sum(u * (end[0] if lstm else end)[-1]))

    y, _ = net.forward(tail, start)
    seed = u[None]
    dh = net.backward(np.zeros_like(y), (seed, np.zeros_like(seed)) if lstm else seed)["h0"][-1]
    exact = float(np.sum(dh * v))
    central = (loss(FD_STEP) - loss(-FD_STEP)) / (2 * FD_STEP)
    if not abs(central - exact) <= FD_RTOL * abs(exact) + FD_ATOL:
        raise AssertionError(
            f"{arch}, T={T}: directional derivative at distance {CHECKED_DISTANCE} is "
            f"{exact!r} from BPTT, {central!r} from central differences"
        )


def summary(curve: np.ndarray) -> dict:
    """What the benchmarks record of one curve: log10 norms at the recorded distances,
    the per-step rate (None without two finite points to fit) and the path length."""
    T = len(curve) - 1
    by_distance = curve[::-1]  # by_distance[d] = curve[T - d]
    zero = np.flatnonzero(np.isneginf(by_distance))
    path = int(zero[0]) - 1 if zero.size else T
    d = np.arange(RATE_MIN_DISTANCE, T // 2 + 1)
    d = d[np.isfinite(by_distance[d])]
    rate = float(np.polyfit(d, by_distance[d], 1)[0]) if d.size >= 2 else None
    points = {d: float(by_distance[d]) for d in common.DECAY_DISTANCES if d <= T}
    return {"points": points, "rate": rate, "path": path}


class Decay:
    """Base of the decay benchmarks: one checked curve per architecture and length."""

    timeout = 900

    def setup_cache(self):
        """summary() of each checked curve, or the AssertionError its check raised."""
        found = {}
        for arch in common.ARCHS:
            for seq_len in common.DECAY_SEQ_LENS:
                try:
                    found[arch, seq_len] = summary(decay_curve(arch, seq_len))
                except AssertionError as error:
                    found[arch, seq_len] = error
        return found

    setup_cache.timeout = 1800

    @staticmethod
    def checked(found, arch, seq_len) -> dict:
        if isinstance(found[arch, seq_len], AssertionError):
            raise found[arch, seq_len]
        return found[arch, seq_len]


class GradientDecay(Decay):
    params = [common.ARCHS, common.DECAY_SEQ_LENS, common.DECAY_DISTANCES]
    param_names = ["arch", "seq_len", "distance"]

    def setup(self, found, arch, seq_len, distance):
        if distance > seq_len:
            raise NotImplementedError(f"distance {distance} is beyond T = {seq_len}")
        curve = self.checked(found, arch, seq_len)
        if distance > curve["path"]:
            raise NotImplementedError(f"no path: dL/dh is exactly 0 beyond d = {curve['path']}")
        self.log10_norm = curve["points"][distance]

    def track_decay(self, found, arch, seq_len, distance):
        return self.log10_norm

    track_decay.unit = "log10(|dL/dh|)"


class DecayRate(Decay):
    params = [common.ARCHS, common.DECAY_SEQ_LENS]
    param_names = ["arch", "seq_len"]

    def setup(self, found, arch, seq_len):
        curve = self.checked(found, arch, seq_len)
        if curve["rate"] is None:
            raise NotImplementedError(f"no path beyond d = {curve['path']}: no rate")
        self.rate = curve["rate"]

    def track_rate(self, found, arch, seq_len):
        """Least-squares slope of log10 |dL/dh_{T-d}| against d over 16 <= d <= T/2."""
        return self.rate

    track_rate.unit = "log10(|dL/dh|) per step"


class DecayPath(Decay):
    params = [common.ARCHS, common.DECAY_SEQ_LENS]
    param_names = ["arch", "seq_len"]

    def setup(self, found, arch, seq_len):
        self.path = self.checked(found, arch, seq_len)["path"]

    def track_path_steps(self, found, arch, seq_len):
        """The longest distance d with dL/dh_{T-d} not exactly zero (T: all of them)."""
        return self.path

    track_path_steps.unit = "steps"
