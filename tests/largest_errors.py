"""Print the largest gradient errors seen against finite differences and against PyTorch.

Run: PYTHONPATH=. python tests/largest_errors.py (the numbers the closing notes quote).
"""

import importlib
import importlib.util

import numpy as np
from checks import bptt, elementwise_differences
from strategies import ARCHS, EDGE_CASES, Case, parts, state_keys

CASES = (
    *EDGE_CASES,
    Case(3, 2, 2, 2, num_layers=2, bidirectional=True, seed=5),
    Case(3, 2, 2, 2, num_layers=2, bidirectional=True, seed=5, weight_scale=3.0),
)
TORCH_CASE = Case(6, 3, 4, 5, num_layers=2, bidirectional=True, seed=6)


def finite_difference_errors(arch):
    """Largest |BPTT - central difference| over every element of every gradient."""
    worst = 0.0
    for case in CASES:
        model, arrays, grads, named = bptt(arch, case)
        numeric, _ = elementwise_differences(model, named, arrays.dy, arrays.dstate)
        worst = max(worst, *(np.max(np.abs(grads[key] - numeric[key])) for key in named))
    return worst


def torch_errors(arch, dtype):
    """Largest |rnnbench - torch| over outputs, final states and every gradient."""
    from test_torch import torch_forward_backward

    from rnnbench.compare import torch_twin

    model = TORCH_CASE.model(arch, dtype)
    arrays = TORCH_CASE.arrays(model)
    y, final = model.forward(arrays.x, arrays.state)
    grads = model.backward(arrays.dy, arrays.dstate)
    torch_y, torch_final, torch_grads = torch_forward_backward(torch_twin(model), arrays)
    pairs = [(y, torch_y), *zip(parts(final), torch_final, strict=True)]
    pairs += [(grads[key], torch_grads[key]) for key in torch_grads]
    assert set(torch_grads) >= set(state_keys(arrays.state))
    return max(float(np.max(np.abs(np.float64(a) - b))) for a, b in pairs)


def main():
    test_torch = (
        importlib.import_module("test_torch") if importlib.util.find_spec("torch") else None
    )
    print(f"{'arch':10} {'vs finite differences':>22} {'vs torch f64':>14} {'vs torch f32':>14}")
    for arch in ARCHS:
        peers = ["", ""]
        if test_torch is not None and arch in test_torch.TORCH_ARCHS:
            peers = [f"{torch_errors(arch, dtype):.2e}" for dtype in (np.float64, np.float32)]
        print(f"{arch:10} {finite_difference_errors(arch):22.2e} {peers[0]:>14} {peers[1]:>14}")


if __name__ == "__main__":
    main()
