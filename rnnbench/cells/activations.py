"""Scalar activations shared by the cells, stable for saturated inputs."""

import math

from ..config import gate


@gate
def sigmoid(x):
    """1 / (1 + exp(-x)), finite for every finite x of either sign."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)
