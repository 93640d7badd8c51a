"""Paired differences against scipy's paired t-test (the oracle)."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from fkt_plugin.paired import paired_difference


def test_the_interval_is_scipys_paired_t_interval() -> None:
    a = {0: 81.2, 1: 80.1, 2: 82.9, 3: 79.5, 5: 90.0}
    b = {0: 79.0, 1: 80.4, 2: 80.2, 3: 78.1, 4: 70.0}
    result = paired_difference(a, b)
    seeds = [0, 1, 2, 3]  # only the seeds both arms have
    reference = stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds])
    low, high = reference.confidence_interval(0.95)
    assert result.n == 4
    assert result.mean == pytest.approx(sum(a[s] - b[s] for s in seeds) / 4)
    assert (result.low, result.high) == (pytest.approx(low), pytest.approx(high))
    assert str(result) == f"{result.mean:+.2f} [{low:+.2f}, {high:+.2f}] (n=4)"


def test_one_shared_seed_has_no_interval_and_none_has_no_difference() -> None:
    result = paired_difference({0: 2.0, 1: 3.0}, {1: 1.0})
    assert result.n == 1 and result.mean == 2.0 and math.isnan(result.low)
    assert str(result) == "+2.00 (n=1, no interval)"
    assert paired_difference({0: 1.0}, {1: 1.0}) is None
