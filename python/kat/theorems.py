"""The theorem registry: each entry's statement and source, reproduced by computation."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from . import _native


@dataclass(frozen=True)
class Theorem:
    """A registry entry: what is claimed, where it comes from and what checks it."""

    id: str
    title: str
    statement: str
    source: str
    routine: str
    test: str


@dataclass(frozen=True)
class TheoremValue:
    """One measured quantity against the value the source states."""

    label: str
    measured: float
    expected: float
    tol: float
    cmp: str   # "==", "<=" or ">="
    passed: bool


@dataclass(frozen=True)
class TheoremResult:
    """The outcome of running an entry: every measured value, the verdict and the time."""

    theorem: Theorem
    values: Tuple[TheoremValue, ...]
    passed: bool
    quick: bool
    seconds: float
    note: str

    def __bool__(self) -> bool:
        return self.passed


def theorems() -> List[Theorem]:
    """Every entry of the registry, in kat's order."""
    return [Theorem(**t) for t in _native.theorem_list()]


def run_theorem(id: str, quick: bool = False) -> TheoremResult:
    """Recompute an entry's measured values (fixed seeds) and compare them with the stated
    ones. ``quick`` runs the reduced sizes. A theorem that does not hold gives
    ``passed=False``; ValueError for an unknown id, MemoryError or ArithmeticError when the
    check could not be computed."""
    r = _native.theorem_run(id, bool(quick))
    return TheoremResult(theorem=Theorem(**r["info"]),
                         values=tuple(TheoremValue(**v) for v in r["values"]),
                         passed=r["passed"], quick=r["quick"], seconds=r["seconds"],
                         note=r["note"])


def check_theorems(ids: Optional[List[str]] = None, quick: bool = False) -> List[TheoremResult]:
    """Run the given entries (None: all of them) and return their results."""
    return [run_theorem(i, quick) for i in (ids if ids is not None else
                                            [t.id for t in theorems()])]
