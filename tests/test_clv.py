"""CLV models: parameter recovery, the likelihood, predictions checked against independent
computations, edge cases and the errors a user sees."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, special  # type: ignore[import-untyped, unused-ignore]

from core.intel import clv
from core.intel.clv import (
    BgNbdParams,
    ClvFitError,
    GammaGammaParams,
    bg_nbd_log_likelihood,
    customer_lifetime_value,
    expected_purchases,
    expected_spend,
    fit_bg_nbd,
    fit_clv,
    fit_gamma_gamma,
    p_alive,
    simulate_bg_nbd,
    simulate_spend,
)

FloatArray = clv.FloatArray

# Fitted to the CDNOW sample in weeks by Fader, Hardie & Lee (2005).
CDNOW = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
DAILY = BgNbdParams(r=0.25, alpha=4.0, a=0.8, b=2.5)
SPEND = GammaGammaParams(p=6.0, q=4.0, v=15.0)


def simulated(
    params: BgNbdParams, customers: int, first: float, last: float, seed: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Customers observed for between ``first`` and ``last`` days (joined at different times)."""
    rng = np.random.default_rng(seed)
    frequency, recency, T = simulate_bg_nbd(
        params, customers, rng.uniform(first, last, customers), rng
    )
    return frequency.astype(np.float64), recency, T


def relative_errors(fitted: Any, true: Any, names: str) -> dict[str, float]:
    return {name: getattr(fitted, name) / getattr(true, name) - 1.0 for name in names.split()}


# ---------------------------------------------------------------------------------------------
# Parameter recovery


# The relative standard deviation of each estimate, measured over 40 seeds at 30,000
# customers, is about r 1.1%, alpha 1.7%, a 2.4%, b 3.4% for both sets; the tolerances are
# about 4 of those. They shrink as 1/sqrt(customers): a quarter of the sample doubles them.
BG_NBD_TOLERANCE = {"r": 0.05, "alpha": 0.07, "a": 0.10, "b": 0.14}


@pytest.mark.parametrize(
    ("true", "first", "last"),
    [
        (DAILY, 30.0, 365.0),
        # Dropout Beta with a > 1, faster buyers, longer and later-starting histories.
        (BgNbdParams(r=0.8, alpha=12.0, a=1.6, b=5.0), 60.0, 730.0),
    ],
)
def test_bg_nbd_recovers_simulated_parameters(true: BgNbdParams, first: float, last: float) -> None:
    frequency, recency, T = simulated(true, 30_000, first, last, seed=11)
    fitted, _ = fit_bg_nbd(frequency, recency, T)
    errors = relative_errors(fitted, true, "r alpha a b")
    for name, error in errors.items():
        assert abs(error) < BG_NBD_TOLERANCE[name], (name, errors)


def test_gamma_gamma_recovers_simulated_parameters() -> None:
    # About 60,000 repeat buyers: the estimates' relative standard deviations over 40 seeds
    # are p 2.5%, q 0.8%, v 3.2%; the tolerances are about 4 of those.
    frequency, _, _ = simulated(DAILY, 100_000, 30.0, 365.0, seed=12)
    monetary = simulate_spend(SPEND, frequency, np.random.default_rng(13))
    fitted = fit_gamma_gamma(frequency, monetary)
    errors = relative_errors(fitted, SPEND, "p q v")
    tolerance = {"p": 0.10, "q": 0.04, "v": 0.13}
    for name, error in errors.items():
        assert abs(error) < tolerance[name], (name, errors)


def test_fit_clv_combines_both_models() -> None:
    frequency, recency, T = simulated(DAILY, 5_000, 30.0, 365.0, seed=14)
    monetary = simulate_spend(SPEND, frequency, np.random.default_rng(15))
    result = fit_clv(frequency, recency, T, monetary, time_unit="days")
    bg_nbd, log_likelihood = fit_bg_nbd(frequency, recency, T)
    assert result.bg_nbd == bg_nbd
    assert result.log_likelihood == log_likelihood
    assert result.gamma_gamma == fit_gamma_gamma(frequency, monetary)
    assert result.customers == 5_000
    stored = result.as_dict()
    assert list(stored) == [
        "r", "alpha", "a", "b", "p", "q", "v", "time_unit", "customers", "log_likelihood"
    ]  # fmt: skip
    assert stored["time_unit"] == "days"
    assert stored["customers"] == 5_000
    assert stored["alpha"] == pytest.approx(bg_nbd.alpha, rel=1e-5)
    assert stored["v"] == pytest.approx(result.gamma_gamma.v, rel=1e-5)


@pytest.mark.slow
def test_a_million_customers_rounded_to_days() -> None:
    # Whole days as stored: the distinct (x, t_x, T) rows are far fewer than the customers.
    rng = np.random.default_rng(16)
    customers = 1_000_000
    start = rng.integers(30, 366, customers).astype(np.float64)
    frequency, recency, T = simulate_bg_nbd(DAILY, customers, start, rng)
    monetary = simulate_spend(SPEND, frequency, rng)
    result = fit_clv(frequency, np.round(recency), T, monetary)
    # 1/sqrt(33) of the 30,000-customer spread; rounding to days adds a bias below 0.5%.
    tolerance = {"r": 0.01, "alpha": 0.015, "a": 0.02, "b": 0.025}
    for name, error in relative_errors(result.bg_nbd, DAILY, "r alpha a b").items():
        assert abs(error) < tolerance[name], name
    for name, error in relative_errors(result.gamma_gamma, SPEND, "p q v").items():
        assert abs(error) < 0.05, name
    assert result.customers == customers


# ---------------------------------------------------------------------------------------------
# The likelihood


def test_fitted_parameters_beat_perturbed_ones() -> None:
    frequency, recency, T = simulated(DAILY, 5_000, 30.0, 365.0, seed=17)
    fitted, log_likelihood = fit_bg_nbd(frequency, recency, T)
    assert log_likelihood == pytest.approx(
        float(np.sum(bg_nbd_log_likelihood(fitted, frequency, recency, T))), rel=1e-12
    )
    values = {"r": fitted.r, "alpha": fitted.alpha, "a": fitted.a, "b": fitted.b}
    for name in values:
        for factor in (0.9, 0.98, 1.02, 1.1):
            perturbed = BgNbdParams(**{**values, name: values[name] * factor})
            other = float(np.sum(bg_nbd_log_likelihood(perturbed, frequency, recency, T)))
            assert other < log_likelihood, (name, factor)


def test_log_likelihood_matches_the_two_term_form() -> None:
    # L = B(a, b+x)/B(a, b) Γ(r+x) α^r / Γ(r) [(α+T)^-(r+x) + [x>0] a/(b+x-1) (α+t_x)^-(r+x)]
    r, alpha, a, b = CDNOW.r, CDNOW.alpha, CDNOW.a, CDNOW.b
    for x, tx, T in [(0, 0.0, 38.86), (2, 30.43, 38.86), (7, 12.0, 50.0)]:
        common = (
            special.beta(a, b + x) / special.beta(a, b) * special.gamma(r + x) * alpha**r
        ) / special.gamma(r)
        dropped = a / (b + x - 1) * (alpha + tx) ** -(r + x) if x > 0 else 0.0
        likelihood = common * ((alpha + T) ** -(r + x) + dropped)
        assert bg_nbd_log_likelihood(CDNOW, x, tx, T) == pytest.approx(np.log(likelihood))


def test_customers_observed_for_no_time_are_left_out() -> None:
    frequency, recency, T = simulated(DAILY, 2_000, 30.0, 365.0, seed=18)
    fitted, log_likelihood = fit_bg_nbd(frequency, recency, T)
    # Customers who made their first purchase at the very end of the period.
    frequency, recency, T = (
        np.concatenate([column, np.zeros(50)]) for column in (frequency, recency, T)
    )
    assert fit_bg_nbd(frequency, recency, T) == (fitted, log_likelihood)
    monetary = simulate_spend(SPEND, frequency, np.random.default_rng(19))
    assert fit_clv(frequency, recency, T, monetary).customers == 2_000
    assert np.all(np.isfinite(expected_purchases(fitted, 365.0, 0, 0.0, 0.0)))


# ---------------------------------------------------------------------------------------------
# Predictions


def integrated(params: BgNbdParams, t: float, x: int, tx: float, T: float) -> tuple[float, float]:
    """E[X(t) | x, t_x, T] and P(alive) by numeric integration over the dropout probability,
    independently of the 2F1 closed form.

    With λ ~ Gamma(r, α) integrated out, "alive at T" has likelihood ∝ (1-p)^x and "left
    right after the last purchase" ∝ p (1-p)^(x-1) ((α+T)/(α+t_x))^(r+x), against the
    Beta(a, b) prior on p. Alive, with λ | data ~ Gamma(r+x, α+T), the customer expects
    (1 - (1 + p t/(α+T))^-(r+x)) / p more purchases.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    k = r + x

    def prior_mean(integrand: Callable[[float], float]) -> float:
        if a < 1 or b < 1:
            # The density is singular at an end; quad's "alg" weight is p^(a-1) (1-p)^(b-1).
            value, _ = integrate.quad(
                integrand, 0, 1, weight="alg", wvar=(a - 1, b - 1), epsabs=0, epsrel=1e-11
            )
            return float(value) / float(special.beta(a, b))
        # Perhaps very concentrated: the density in log space, the posterior mean as a
        # breakpoint so that quad finds the mass.
        log_norm = float(special.betaln(a, b))

        def weighted(p: float) -> float:
            log_density = (a - 1) * math.log(p) + (b - 1) * math.log1p(-p) - log_norm
            return integrand(p) * math.exp(log_density)

        value, _ = integrate.quad(
            weighted, 0, 1, points=[a / (a + b + x)], epsabs=0, epsrel=1e-11, limit=200
        )
        return float(value)

    def bought(p: float) -> float:
        s = t / (alpha + T)
        return k * s if p == 0 else -math.expm1(-k * math.log1p(p * s)) / p

    alive = prior_mean(lambda p: (1 - p) ** x)
    dropped = 0.0
    if x > 0:
        dropped = prior_mean(lambda p: p * (1 - p) ** (x - 1)) * ((alpha + T) / (alpha + tx)) ** k
    future = prior_mean(lambda p: (1 - p) ** x * bought(p))
    return future / (alive + dropped), alive / (alive + dropped)


def test_cdnow_example_from_the_paper() -> None:
    # FHL (2005): 2 repeat purchases, the last at week 30.43 of 38.86, expects 1.226 purchases
    # in the next 39 weeks.
    assert float(expected_purchases(CDNOW, 39.0, 2, 30.43, 38.86)) == pytest.approx(1.226, abs=1e-3)


@pytest.mark.parametrize(
    ("params", "t", "x", "tx", "T"),
    [
        (CDNOW, 39.0, 2, 30.43, 38.86),
        (CDNOW, 52.0, 0, 0.0, 20.0),
        (CDNOW, 10.0, 60, 70.0, 75.0),
        (DAILY, 365.0, 5, 100.0, 300.0),
        (BgNbdParams(r=0.8, alpha=12.0, a=1.6, b=5.0), 365.0, 12, 200.0, 220.0),
        (BgNbdParams(r=2.0, alpha=30.0, a=0.3, b=0.6), 5_000.0, 3, 10.0, 400.0),
    ],
)
def test_predictions_match_numeric_integration(
    params: BgNbdParams, t: float, x: int, tx: float, T: float
) -> None:
    purchases, alive = integrated(params, t, x, tx, T)
    assert float(expected_purchases(params, t, x, tx, T)) == pytest.approx(purchases, rel=1e-7)
    assert float(p_alive(params, x, tx, T)) == pytest.approx(alive, rel=1e-7)


def test_extreme_parameters_fall_back_to_quadrature_accurately() -> None:
    # a and x in the hundreds with a horizon far beyond T: scipy's hyp2f1 overflows for both
    # forms of the closed form here, and the quantile quadrature gives the answer.
    params = BgNbdParams(r=9.1, alpha=2.0, a=228.3, b=1089.8)
    purchases, _ = integrated(params, 2_000.0, 279, 5.0, 5.0)
    assert float(expected_purchases(params, 2_000.0, 279, 5.0, 5.0)) == pytest.approx(
        purchases, rel=1e-7
    )


def test_p_alive_properties() -> None:
    T = np.array([0.0, 1.0, 30.0, 365.0, 1e6])
    assert np.all(p_alive(DAILY, 0, 0.0, T) == 1.0)
    older = np.linspace(300.0, 1.0, 50)  # last purchase ever further back, same x and T
    alive = p_alive(DAILY, 3, older, 300.0)
    assert np.all((alive >= 0) & (alive <= 1))
    assert np.all(np.diff(alive) < 0)
    # Bought right at the end of the period: only dropout after that purchase counts.
    assert float(alive[0]) == pytest.approx((DAILY.b + 2) / (DAILY.a + DAILY.b + 2))


def test_expected_purchases_grow_with_the_horizon() -> None:
    horizons = np.array([0.0, 1.0, 7.0, 30.0, 90.0, 365.0, 3650.0])[:, np.newaxis]
    frequency = np.array([0.0, 1.0, 4.0, 40.0])
    recency = np.array([0.0, 10.0, 200.0, 250.0])
    purchases = expected_purchases(DAILY, horizons, frequency, recency, 300.0)
    assert purchases.shape == (7, 4)
    assert np.all(purchases[0] == 0)
    assert np.all(np.diff(purchases, axis=0) > 0)


# Valid inputs, far past anything real: parameters anywhere in the optimiser's bounds, tens
# of millions of purchases, histories and horizons of a million time units.
positive = st.floats(min_value=np.exp(-20.0), max_value=np.exp(20.0))


@settings(max_examples=200, deadline=None)
@given(
    r=positive,
    alpha=positive,
    a=positive,
    b=positive,
    x=st.integers(min_value=0, max_value=10**7),
    T=st.floats(min_value=0.0, max_value=1e6),
    recency_share=st.floats(min_value=0.0, max_value=1.0),
    t=st.floats(min_value=0.0, max_value=1e6),
)
def test_predictions_stay_finite_and_within_bounds(
    r: float, alpha: float, a: float, b: float, x: int, T: float, recency_share: float, t: float
) -> None:
    params = BgNbdParams(r=r, alpha=alpha, a=a, b=b)
    tx = recency_share * T if x > 0 else 0.0
    alive = float(p_alive(params, x, tx, T))
    purchases = float(expected_purchases(params, t, x, tx, T))
    assert 0.0 <= alive <= 1.0
    # A customer alive at T buys at most at their expected rate (r + x)/(α + T) throughout.
    # (plus a hair for subnormal horizons, where the product underflows)
    assert 0.0 <= purchases <= alive * (r + x) * t / (alpha + T) * (1 + 1e-9) + 1e-300


def test_expected_spend() -> None:
    # p (v + x m) / (p x + q - 1): the population mean p v / (q - 1) = 30 for x = 0, moving
    # towards the customer's own average as repeat purchases accumulate.
    spend = expected_spend(SPEND, [0, 3, 10_000], [0.0, 20.0, 20.0])
    assert spend == pytest.approx([30.0, 6 * (15 + 60) / (18 + 3), 20.0], rel=1e-3)
    assert float(spend[1]) == pytest.approx(450 / 21)
    with pytest.raises(ValueError, match="q > 1"):
        expected_spend(GammaGammaParams(p=1.0, q=0.9, v=1.0), 0, 0.0)


def test_customer_lifetime_value() -> None:
    frequency = np.array([0.0, 2.0, 12.0])
    recency = np.array([0.0, 40.0, 300.0])
    T = np.array([90.0, 200.0, 320.0])
    monetary = np.array([0.0, 35.0, 80.0])
    plain = customer_lifetime_value(DAILY, SPEND, frequency, recency, T, monetary, 365.0)
    expected = expected_purchases(DAILY, 365.0, frequency, recency, T) * expected_spend(
        SPEND, frequency, monetary
    )
    assert plain == pytest.approx(expected)
    discounted = customer_lifetime_value(
        DAILY, SPEND, frequency, recency, T, monetary, 365.0,
        annual_discount_rate=0.10, units_per_year=365.0,
    )  # fmt: skip
    # Monthly revenue discounted by between 1.1^(-1/12) and 1.1^-1.
    assert np.all(discounted < plain * 1.1 ** (-1 / 12))
    assert np.all(discounted > plain / 1.1)
    with pytest.raises(ValueError, match="units_per_year"):
        customer_lifetime_value(
            DAILY, SPEND, frequency, recency, T, monetary, 365.0, annual_discount_rate=0.1
        )


# ---------------------------------------------------------------------------------------------
# Simulation


def test_simulation_matches_the_model_means() -> None:
    # E[X(t)] = (a+b-1)/(a-1) [1 - (α/(α+t))^r 2F1(r, b; a+b-1; t/(α+t))] for a new customer.
    r, alpha, a, b = DAILY.r, DAILY.alpha, DAILY.a, DAILY.b
    t = 180.0
    mean = (
        (a + b - 1)
        / (a - 1)
        * (1 - (alpha / (alpha + t)) ** r * special.hyp2f1(r, b, a + b - 1, t / (alpha + t)))
    )
    frequency, recency, T = simulated(DAILY, 200_000, t, t, seed=20)
    assert float(frequency.mean()) == pytest.approx(mean, abs=4 * frequency.std() / 447)
    assert np.all((recency <= T) & (recency >= 0) & ((recency > 0) == (frequency > 0)))
    monetary = simulate_spend(SPEND, frequency, np.random.default_rng(21))
    assert np.all((monetary > 0) == (frequency > 0))


# ---------------------------------------------------------------------------------------------
# Errors a user sees


def test_too_few_customers() -> None:
    with pytest.raises(ClvFitError, match=r"at least 20 customers .* got 19"):
        fit_bg_nbd(np.ones(19), np.ones(19), np.full(19, 5.0))


def test_no_repeat_buyers() -> None:
    zeros = np.zeros(100)
    with pytest.raises(ClvFitError, match="none of the 100 customers has made a repeat purchase"):
        fit_bg_nbd(zeros, zeros, np.full(100, 30.0))
    with pytest.raises(ClvFitError, match=r"at least 20 repeat buyers .* got 0"):
        fit_gamma_gamma(zeros, zeros)


@pytest.mark.parametrize(
    ("frequency", "recency", "T", "message"),
    [
        ([1.0] * 30, [40.0] * 30, [30.0] * 30, "30 customers have a recency greater than T"),
        ([-1.0] * 30, [0.0] * 30, [30.0] * 30, "negative frequency"),
        ([1.0] * 30, [1.0] * 29 + [np.nan], [30.0] * 30, "recency has 1 missing"),
        ([1.0] * 30, [1.0] * 30, [30.0] * 29, "differ in length"),
    ],
)
def test_invalid_summaries(
    frequency: list[float], recency: list[float], T: list[float], message: str
) -> None:
    with pytest.raises(ClvFitError, match=message):
        fit_bg_nbd(frequency, recency, T)


def test_non_positive_spend_is_left_out() -> None:
    frequency = np.full(24, 3.0)
    monetary = np.r_[np.full(20, 10.0), np.full(2, 12.0), 0.0, -5.0]
    assert fit_gamma_gamma(frequency, monetary) == fit_gamma_gamma(frequency[:22], monetary[:22])
    with pytest.raises(ClvFitError, match=r"got 19 \(2 more spent zero or less\)"):
        fit_gamma_gamma(frequency[3:], monetary[3:])


def test_optimiser_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def gives_up(objective: Any, start: FloatArray, **options: Any) -> Any:
        return optimize.OptimizeResult(
            x=start, fun=objective(start)[0], success=False, message="ABNORMAL"
        )

    monkeypatch.setattr(optimize, "minimize", gives_up)
    frequency, recency, T = simulated(DAILY, 500, 30.0, 365.0, seed=22)
    with pytest.raises(ClvFitError, match=r"BG/NBD fit did not converge \(ABNORMAL\)"):
        fit_bg_nbd(frequency, recency, T)
