"""The theorem registry through Python."""
import pytest

import kat


def test_registry_lists_entries():
    ts = kat.theorems()
    assert len(ts) >= 10
    ids = [t.id for t in ts]
    assert len(set(ids)) == len(ids)
    for t in ts:
        assert t.title and t.statement and t.source and t.routine


def test_every_theorem_holds_quick():
    results = kat.check_theorems(quick=True)
    assert len(results) == len(kat.theorems())
    for r in results:
        assert r.quick and r.values
        assert r.passed, (r.theorem.id, [v for v in r.values if not v.passed])
        for v in r.values:
            assert v.cmp in ("==", "<=", ">=")


def test_one_theorem_full_size():
    r = kat.run_theorem("laplace-closed-form")
    assert r and not r.quick and r.theorem.id == "laplace-closed-form"


def test_unknown_theorem():
    with pytest.raises(ValueError, match="no-such-theorem"):
        kat.run_theorem("no-such-theorem")
