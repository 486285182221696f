"""Shared fixtures of kat's pytest suites."""
import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(20261207)


class Frozen:
    """Copies of arrays taken before a call, to check afterwards that kat left them alone."""

    def __init__(self, *arrays):
        self.arrays = arrays
        self.copies = [np.array(a, copy=True) for a in arrays]

    def check(self):
        for a, c in zip(self.arrays, self.copies):
            assert np.array_equal(a, c, equal_nan=a.dtype.kind == "f"), "an input was modified"


@pytest.fixture
def frozen():
    return Frozen
