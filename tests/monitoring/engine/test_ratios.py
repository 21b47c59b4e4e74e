"""Rate ratio against a hand-worked Katz interval."""

import math

import pytest

from monitoring.stats.ratios import rate_ratio


def test_katz_interval_matches_a_hand_worked_case():
    # 20/100 now vs 10/100 before: RR 2; SE = sqrt(1/20 - 1/100 + 1/10 - 1/100) = sqrt(0.13)
    result = rate_ratio(20, 100, 10, 100)
    se = math.sqrt(0.13)
    assert result.value == pytest.approx(2.0)
    assert result.low == pytest.approx(2.0 * math.exp(-1.959963984540054 * se))
    assert result.high == pytest.approx(2.0 * math.exp(1.959963984540054 * se))
    assert result.low == pytest.approx(0.987, abs=1e-3)
    assert result.n == 100


def test_zero_counts_use_the_continuity_correction_and_empty_samples_are_undefined():
    result = rate_ratio(5, 100, 0, 100)
    assert math.isfinite(result.value) and result.value > 1
    assert result.low < result.value < result.high
    assert math.isnan(rate_ratio(0, 0, 1, 10).value)
    with pytest.raises(ValueError):
        rate_ratio(11, 10, 1, 10)
