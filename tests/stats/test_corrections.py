"""Multiple-testing corrections: equal to statsmodels' multipletests, bit for bit."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from steward.errors import InvalidInput
from steward.stats.corrections import adjust_p_values, benjamini_hochberg, bonferroni, holm


@pytest.fixture(autouse=True)
def _no_gc_in_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """statsmodels' Holm runs a full ``gc.collect()`` per call (~0.1 s here); skip it."""
    monkeypatch.setattr(gc, "collect", lambda *args: 0)


OURS = {"holm": holm, "fdr_bh": benjamini_hochberg, "bonferroni": bonferroni}


def draw(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 60))
    p = np.concatenate([rng.uniform(0, 1, m), rng.uniform(0, 0.01, m // 3)])
    if seed % 3 == 0:  # ties, exact zeros and ones
        p[: m // 2] = np.round(p[: m // 2], 1)
    rng.shuffle(p)
    return p


@pytest.mark.parametrize("seed", range(50))
@pytest.mark.parametrize("method", sorted(OURS))
def test_equal_to_statsmodels(seed: int, method: str) -> None:
    p = draw(seed)
    np.testing.assert_array_equal(OURS[method](p), multipletests(p, method=method)[1])


@pytest.mark.parametrize("method", ["holm", "benjamini_hochberg", "bonferroni", "none"])
def test_undefined_p_values_stay_out_of_the_family(method: str) -> None:
    p = [0.01, None, 0.04, 0.03, None]
    got = adjust_p_values(p, method)  # type: ignore[arg-type]
    assert got[1] is None
    assert got[4] is None
    defined = [0.01, 0.04, 0.03]
    if method == "none":
        assert [got[0], got[2], got[3]] == defined
    else:
        name = {"benjamini_hochberg": "fdr_bh"}.get(method, method)
        assert [got[0], got[2], got[3]] == list(multipletests(defined, method=name)[1])
    assert adjust_p_values([None, None], method) == [None, None]  # type: ignore[arg-type]
    assert adjust_p_values([], method) == []  # type: ignore[arg-type]


def test_adjusted_values_are_ordered_and_bounded() -> None:
    p = draw(7)
    for fn in OURS.values():
        out = fn(p)
        assert ((out >= p) & (out <= 1)).all()
        order = np.argsort(p, kind="stable")
        assert (np.diff(out[order]) >= 0).all()


@pytest.mark.parametrize("bad", [[0.1, float("nan")], [1.2], [-0.1], [[0.1, 0.2]], ["x"]])
def test_bad_p_values_are_rejected(bad: object) -> None:
    with pytest.raises(InvalidInput) as err:
        holm(bad)
    assert err.value.field == "p_values"


def test_unknown_method_is_rejected() -> None:
    with pytest.raises(InvalidInput) as err:
        adjust_p_values([0.1], "sidak")  # type: ignore[arg-type]
    assert err.value.field == "correction"
