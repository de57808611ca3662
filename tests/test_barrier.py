"""The time loop's barrier (`rnnbench.cpu.barrier`): no thread passes a step before every
thread has finished the one before, whether it spins or sleeps there."""

import threading

import numba
import numpy as np
import pytest

from rnnbench.cpu import barrier

STEPS = 300


@numba.njit(nogil=True)
def walk(counts, me, work, seen):
    """STEPS steps of `work[s]` busy iterations each; seen[s] = the least and greatest
    step any thread had reached when this one passed the barrier of step s."""
    parties = counts.size // barrier.STRIDE - 1
    for s in range(STEPS):
        barrier.wait_for(counts, s)
        low, high = STEPS, 0
        for k in range(parties):
            reached = counts[k * barrier.STRIDE]
            low, high = min(low, reached), max(high, reached)
        seen[s, 0], seen[s, 1] = low, high
        x = 0.0
        for i in range(work[s]):
            x += np.sqrt(i)
        seen[s, 2] = x > -1  # keeps the work
        barrier.arrive(counts, me, s + 1)


@pytest.mark.skipif(not barrier.AVAILABLE, reason="the barrier needs Linux's futex")
@pytest.mark.parametrize("parties", [2, 3])
def test_no_thread_passes_a_step_before_all_finished_the_one_before(parties):
    counts = barrier.progress(parties)
    rng = np.random.default_rng(parties)
    # Uneven work (up to ~1 ms, beyond the spinning) makes threads wait both ways.
    works = [rng.integers(0, 10**6, STEPS) * (rng.random(STEPS) < 0.1) for _ in range(parties)]
    seen = [np.zeros((STEPS, 3), np.int64) for _ in range(parties)]
    walk(barrier.progress(1), 0, np.zeros(STEPS, np.int64), seen[0])  # compiled first
    callers = [
        threading.Thread(target=walk, args=(counts, k, works[k], seen[k])) for k in range(parties)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=120)
    assert not any(caller.is_alive() for caller in callers), "a thread never passed"
    steps = np.arange(STEPS)
    for k in range(parties):
        assert (seen[k][:, 0] == steps).all(), k  # every thread had finished step s - 1
        assert (seen[k][:, 1] <= steps + 1).all(), k  # none had gone beyond step s
    assert (counts[: parties * barrier.STRIDE : barrier.STRIDE] == STEPS).all()
    assert counts[-barrier.STRIDE] == 0  # nobody asleep
