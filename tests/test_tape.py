"""The tape is the forward's: `backward` returns the gradients of what that forward saw,
whatever the caller does to its arrays afterwards, and pairs with the most recent forward
of its own thread."""

import threading

import numpy as np
import pytest
from strategies import ARCHS, Case, parts

import rnnbench

CASE = Case(4, 3, 2, 3, num_layers=2, bidirectional=True, seed=7)


def in_place_edits(model: rnnbench.RNN, arrays):
    """Change every input array of a forward in place: x, the state and each parameter."""
    for a in (arrays.x, *parts(arrays.state), *model.params.values()):
        a += 0.5


@pytest.mark.parametrize("arch", ARCHS)
def test_editing_inputs_after_forward_leaves_the_gradients_alone(arch):
    model = CASE.model(arch)
    arrays = CASE.arrays(model)
    model.forward(arrays.x, arrays.state)
    expected = model.backward(arrays.dy, arrays.dstate)
    model.forward(arrays.x, arrays.state)
    in_place_edits(model, arrays)
    got = model.backward(arrays.dy, arrays.dstate)
    assert list(got) == list(expected)
    for key, grad in got.items():
        np.testing.assert_array_equal(grad, expected[key], err_msg=key)


def test_each_thread_backwards_through_its_own_forward():
    """A forwards, B forwards other inputs, A backwards: A gets the gradients of its own
    input, B of its own, and a thread that never forwarded gets a ValueError."""
    model = CASE.model("lstm")
    mine, theirs = CASE.arrays(model), CASE._replace(seed=8).arrays(model)
    expected = {}
    for name, arrays in (("mine", mine), ("theirs", theirs)):
        model.forward(arrays.x, arrays.state)
        expected[name] = model.backward(arrays.dy, arrays.dstate)
        expected[name]["tape_nbytes"] = model.tape_nbytes
    got, errors = {}, []
    forwarded = threading.Event()

    def other_thread():
        try:
            model.forward(theirs.x, theirs.state)
            forwarded.set()
            got["theirs"] = model.backward(theirs.dy, theirs.dstate)
            got["theirs"]["tape_nbytes"] = model.tape_nbytes
        except Exception as error:
            errors.append(error)
            forwarded.set()

    model.forward(mine.x, mine.state)
    thread = threading.Thread(target=other_thread)
    thread.start()
    forwarded.wait()
    got["mine"] = model.backward(mine.dy, mine.dstate)
    got["mine"]["tape_nbytes"] = model.tape_nbytes
    thread.join()
    assert not errors
    for name in ("mine", "theirs"):
        assert list(got[name]) == list(expected[name])
        for key, grad in got[name].items():
            np.testing.assert_array_equal(grad, expected[name][key], err_msg=f"{name} {key}")

    def never_forwarded():
        try:
            model.backward(mine.dy, mine.dstate)
        except ValueError as error:
            errors.append(error)

    thread = threading.Thread(target=never_forwarded)
    thread.start()
    thread.join()
    assert len(errors) == 1 and "forward" in str(errors[0])
