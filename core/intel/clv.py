"""Customer lifetime value: BG/NBD purchase frequency and Gamma-Gamma spend.

The models are those of Fader, Hardie & Lee (2005): "Counting your customers the easy
way: an alternative to the Pareto/NBD model" (BG/NBD) and "RFM and CLV: using iso-value
curves for customer base analysis" (Gamma-Gamma). Both are fitted by maximum likelihood
from per-customer summaries:

* ``frequency`` (x): the number of repeat purchases, i.e. purchases after the first one;
* ``recency`` (t_x): the time from the first purchase to the last one (ignored when x = 0);
* ``T``: the time from the first purchase to the end of the observation period;
* ``monetary`` (m): the average value of the repeat purchases (ignored when x = 0).

Times may be in any unit (Cadence uses days) as long as every time and every prediction
horizon uses the same one: ``alpha`` is expressed in that unit, so a customer's expected
purchase rate ``r / alpha`` is per unit of time. Customers with T = 0 carry no information
about purchase rates and are left out of the fit; predictions for them are still finite.

Everything here is pure numpy/scipy, vectorised over customers, with no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special  # type: ignore[import-untyped, unused-ignore]

from core.errors import CadenceError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Objective = Callable[[FloatArray], tuple[float, FloatArray]]

MIN_CUSTOMERS: Final = 20
"""Fewest customers (repeat buyers, for the spend model) a fit accepts; fewer cannot pin down
three or four parameters."""

_LOG_BOUND: Final = 20.0
"""Bound on each log-parameter during optimisation: data with no sign of, say, dropout push a
parameter towards infinity, and the bound keeps it (and everything computed from it) finite."""

_SINGULAR_GAP: Final = 1e-7
"""How far predictions step off the removable singularities of the closed forms (a = 1, and
a + b = 1 for customers with x = 0); the error this introduces is of the same order."""

_GRADIENT_TOLERANCE: Final = 1e-3
"""Largest gradient of the mean negative log-likelihood (per customer, per log-parameter) at
which a fit that the optimiser did not flag as converged is still accepted."""

_BOUND_SLACK: Final = 1e-9
"""Relative rounding allowed before a closed-form prediction counts as outside its bounds."""

_QUADRATURE_BLOCK: Final = 4096
"""Customers per block in the quadrature fallback (each needs a few arrays of ~113 nodes)."""


class ClvFitError(CadenceError):
    """The CLV models cannot be fitted to these data; the message says what is missing."""


def _require_positive(**values: float) -> None:
    for name, value in values.items():
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")


@dataclass(frozen=True)
class BgNbdParams:
    """BG/NBD parameters: purchase rate ~ Gamma(r, alpha), dropout probability ~ Beta(a, b).

    ``alpha`` is a rate in the caller's time unit: the mean purchase rate is r / alpha per unit.
    """

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        _require_positive(r=self.r, alpha=self.alpha, a=self.a, b=self.b)


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma parameters: transaction value ~ Gamma(p, nu), per-customer nu ~ Gamma(q, v).

    ``v`` is in the currency unit of the spend; the population mean spend is p v / (q - 1).
    """

    p: float
    q: float
    v: float

    def __post_init__(self) -> None:
        _require_positive(p=self.p, q=self.q, v=self.v)


@dataclass(frozen=True)
class FitResult:
    """Both fitted models with what is needed to store them and to trust them later."""

    bg_nbd: BgNbdParams
    gamma_gamma: GammaGammaParams
    customers: int
    """Customers the BG/NBD model was fitted on (those with T > 0)."""
    log_likelihood: float
    """BG/NBD log-likelihood at the fit, summed over those customers; it compares fits of the
    same customers only."""
    time_unit: str
    """The unit of every time given to the fit; predictions must use it too."""

    def as_dict(self) -> dict[str, float | int | str]:
        """Plain values for storage and display: parameters to 6 significant digits, the
        log-likelihood to 3 decimals."""
        return {
            "r": _significant(self.bg_nbd.r),
            "alpha": _significant(self.bg_nbd.alpha),
            "a": _significant(self.bg_nbd.a),
            "b": _significant(self.bg_nbd.b),
            "p": _significant(self.gamma_gamma.p),
            "q": _significant(self.gamma_gamma.q),
            "v": _significant(self.gamma_gamma.v),
            "time_unit": self.time_unit,
            "customers": self.customers,
            "log_likelihood": round(self.log_likelihood, 3),
        }


def _significant(value: float) -> float:
    return float(f"{value:.6g}")


# ---------------------------------------------------------------------------------------------
# Input checks and compression


def _columns(**named: ArrayLike) -> list[FloatArray]:
    """One-dimensional, finite, equally long float arrays, or a ClvFitError naming the culprit."""
    arrays = []
    for name, values in named.items():
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 1:
            raise ClvFitError(f"{name} must be a one-dimensional array with one value per customer")
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise ClvFitError(f"{name} has {bad} missing or infinite values; drop those customers")
        arrays.append(array)
    lengths = {name: array.size for name, array in zip(named, arrays, strict=True)}
    if len(set(lengths.values())) > 1:
        raise ClvFitError(f"the per-customer arrays differ in length: {lengths}")
    return arrays


def _rfm(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    x, tx, t_obs = _columns(frequency=frequency, recency=recency, T=T)
    checks = (
        (x < 0, "a negative frequency"),
        (tx < 0, "a negative recency"),
        (tx > t_obs, "a recency greater than T (the last purchase cannot follow the period end)"),
    )
    for mask, problem in checks:
        bad = int(np.count_nonzero(mask))
        if bad:
            raise ClvFitError(f"{bad} customers have {problem}; fix or drop them before fitting")
    # Recency means nothing without repeat purchases; zeroing it lets those customers compress.
    return x, np.where(x > 0, tx, 0.0), t_obs


def _distinct_rows(*columns: FloatArray) -> tuple[list[FloatArray], FloatArray]:
    """Distinct rows across the columns and how many customers share each.

    Data rounded to days repeat the same (x, t_x, T) many times, so the likelihood is summed
    over distinct rows with counts as weights. A lexsort is used rather than
    ``np.unique(axis=0)``, which is several times slower on a million rows.
    """
    order = np.lexsort(columns[::-1])
    ordered = [column[order] for column in columns]
    starts = np.ones(order.size, dtype=bool)
    starts[1:] = np.logical_or.reduce([column[1:] != column[:-1] for column in ordered])
    first = np.flatnonzero(starts)
    counts = np.diff(np.append(first, order.size)).astype(np.float64)
    return [column[first] for column in ordered], counts


def _weights_by_value(values: FloatArray, counts: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Distinct values and their total counts: terms depending only on x are summed once per x."""
    distinct, index = np.unique(values, return_inverse=True)
    return distinct, np.bincount(index, weights=counts).astype(np.float64)


def _minimise(objective: Objective, start: FloatArray, model: str) -> FloatArray:
    """Minimise over log-parameters; a ClvFitError if no usable optimum comes out."""
    result = optimize.minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-_LOG_BOUND, _LOG_BOUND)] * start.size,
        options={"maxiter": 2000},
    )
    theta = np.asarray(result.x, dtype=np.float64)
    value, gradient = objective(theta)
    # The line search gives up ("ABNORMAL") on flat ridges, e.g. when the data cannot tell
    # dropout heterogeneity apart and a, b run off together, though the point it stops at is
    # an optimum for every practical purpose; judge by the gradient, ignoring components that
    # push against a bound.
    pinned = ((theta <= -_LOG_BOUND) & (gradient > 0)) | ((theta >= _LOG_BOUND) & (gradient < 0))
    stationary = bool(np.all(np.abs(gradient[~pinned]) < _GRADIENT_TOLERANCE))
    if not (np.isfinite(value) and np.all(np.isfinite(theta)) and (result.success or stationary)):
        raise ClvFitError(
            f"the {model} fit did not converge ({result.message}); check that all times use one "
            "unit and spend values are plausible, or refit with a small penalty such as 0.001"
        )
    return theta


# ---------------------------------------------------------------------------------------------
# BG/NBD


def bg_nbd_log_likelihood(
    params: BgNbdParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> FloatArray:
    """Per-customer BG/NBD log-likelihood: to compare parameter sets on the same customers.

    ln L = ln Γ(r+x) - ln Γ(r) + r ln α + ln B(a, b+x) - ln B(a, b)
           + ln[(α+T)^-(r+x) + [x > 0] a/(b+x-1) (α+t_x)^-(r+x)],
    the last term summed in log space so it neither overflows nor underflows for large x or T.
    """
    x, tx, t_obs = _broadcast(frequency, recency, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x > 0
    x_repeat = np.where(repeat, x, 1.0)  # keeps log(b + x - 1) defined where it is unused
    alive = -(r + x) * np.log(alpha + t_obs)
    dead = np.where(
        repeat, np.log(a) - np.log(b + x_repeat - 1) - (r + x) * np.log(alpha + tx), -np.inf
    )
    result: FloatArray = (
        special.gammaln(r + x)
        - special.gammaln(r)
        + r * np.log(alpha)
        + special.betaln(a, b + x)
        - special.betaln(a, b)
        + np.logaddexp(alive, dead)
    )
    return result


def _bg_nbd_objective(
    x: FloatArray, tx: FloatArray, t_obs: FloatArray, counts: FloatArray, penalty: float
) -> Objective:
    """Mean negative log-likelihood over log(r, alpha, a, b), with its gradient.

    The mean (not the sum) keeps the optimiser's tolerances meaningful at any customer count.
    The gradient is analytic: finite differences would cost four extra passes over the data.
    """
    total = float(counts.sum())
    distinct_x, x_counts = _weights_by_value(x, counts)
    once = x == 0
    t0, w0 = t_obs[once], counts[once]
    x1, tx1, t1, w1 = x[~once], tx[~once], t_obs[~once], counts[~once]

    def objective(theta: FloatArray) -> tuple[float, FloatArray]:
        params = np.exp(theta)
        r, alpha, a, b = params
        psi_ab = special.digamma(a + b)
        psi_abx = special.digamma(a + b + distinct_x)
        x_terms = (
            special.gammaln(r + distinct_x)
            - special.gammaln(r)
            + special.gammaln(b + distinct_x)
            - special.gammaln(b)
            + special.gammaln(a + b)
            - special.gammaln(a + b + distinct_x)
        )
        log_t0 = np.log(alpha + t0)
        log_t1 = np.log(alpha + t1)
        log_tx1 = np.log(alpha + tx1)
        shape1 = r + x1
        alive = -shape1 * log_t1
        dead = np.log(a) - np.log(b + x1 - 1) - shape1 * log_tx1
        # Posterior share of "dropped out right after the last purchase" for each repeat buyer.
        dead_share = special.expit(dead - alive)
        alive_share = 1.0 - dead_share

        log_likelihood = (
            x_counts @ x_terms
            + total * r * np.log(alpha)
            - r * (w0 @ log_t0)
            + w1 @ np.logaddexp(alive, dead)
        )
        gradient = np.array(
            [
                x_counts @ (special.digamma(r + distinct_x) - special.digamma(r))
                + total * np.log(alpha)
                - w0 @ log_t0
                - w1 @ (alive_share * log_t1 + dead_share * log_tx1),
                total * r / alpha
                - r * (w0 @ (1.0 / (alpha + t0)))
                - w1 @ (shape1 * (alive_share / (alpha + t1) + dead_share / (alpha + tx1))),
                x_counts @ (psi_ab - psi_abx) + (w1 @ dead_share) / a,
                x_counts @ (special.digamma(b + distinct_x) - special.digamma(b) + psi_ab - psi_abx)
                - w1 @ (dead_share / (b + x1 - 1)),
            ]
        )
        # Chain rule to log-parameters; the penalty leaves alpha alone so it is unit-free.
        value = -float(log_likelihood) / total
        grad = -gradient * params / total
        shrunk = np.array([1.0, 0.0, 1.0, 1.0])
        value += penalty * float(np.sum(shrunk * theta**2))
        grad += 2.0 * penalty * shrunk * theta
        return value, grad

    return objective


def fit_bg_nbd(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, *, penalty: float = 0.0
) -> tuple[BgNbdParams, float]:
    """Fit BG/NBD by maximum likelihood; returns the parameters and the summed log-likelihood.

    ``penalty`` adds penalty * (ln² r + ln² a + ln² b) to the mean negative log-likelihood,
    pulling those parameters towards 1; a small value (0.001) tames fits on thin data whose
    parameters would otherwise run off to extreme values. Customers with T = 0 are left out.
    """
    x, tx, t_obs = _rfm(frequency, recency, T)
    observed = t_obs > 0
    x, tx, t_obs = x[observed], tx[observed], t_obs[observed]
    if x.size < MIN_CUSTOMERS:
        raise ClvFitError(
            f"the purchase model needs at least {MIN_CUSTOMERS} customers observed for longer "
            f"than zero time, got {x.size}; import more order history before fitting"
        )
    if not np.any(x > 0):
        raise ClvFitError(
            f"none of the {x.size} customers has made a repeat purchase, so purchase rates and "
            "dropout cannot be estimated; fit on a longer order history"
        )
    # Working in units of the mean T puts alpha near 1 whatever unit the caller uses.
    scale = float(t_obs.mean())
    (xs, txs, ts), counts = _distinct_rows(x, tx / scale, t_obs / scale)
    rate = float(counts @ xs) / float(counts @ ts)
    start = np.log(np.array([1.0, 1.0 / rate, 1.0, 1.0]))
    theta = _minimise(_bg_nbd_objective(xs, txs, ts, counts, penalty), start, "BG/NBD")
    r, alpha, a, b = (float(value) for value in np.exp(theta))
    params = BgNbdParams(r=r, alpha=alpha * scale, a=a, b=b)
    log_likelihood = counts @ bg_nbd_log_likelihood(params, xs, txs * scale, ts * scale)
    return params, float(log_likelihood)


def _broadcast(*values: ArrayLike) -> list[FloatArray]:
    return [np.asarray(v, dtype=np.float64) for v in np.broadcast_arrays(*values)]


def _log_inverse_p_alive(
    params: BgNbdParams, x: FloatArray, tx: FloatArray, t_obs: FloatArray
) -> FloatArray:
    """ln(1 / P(alive)) = ln(1 + [x > 0] a/(b+x-1) ((α+T)/(α+t_x))^(r+x)), kept in log space."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x > 0
    x_repeat = np.where(repeat, x, 1.0)
    log_odds = (
        np.log(a)
        - np.log(b + x_repeat - 1)
        + (r + x_repeat) * (np.log(alpha + t_obs) - np.log(alpha + tx))
    )
    result: FloatArray = np.where(repeat, np.logaddexp(0.0, log_odds), 0.0)
    return result


def p_alive(
    params: BgNbdParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> FloatArray:
    """Probability each customer is still active at the end of their observation period.

    Customers without repeat purchases get 1: in BG/NBD dropout happens only right after a
    repeat purchase.
    """
    x, tx, t_obs = _broadcast(frequency, recency, T)
    return np.exp(-_log_inverse_p_alive(params, x, tx, t_obs))


def expected_purchases(
    params: BgNbdParams, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> FloatArray:
    """Expected number of purchases in the next ``t`` time units: E[X(t) | x, t_x, T].

    FHL (2005) eq. 10: E[X(t) | alive, x, T] * P(alive). ``t`` broadcasts against the
    customers (e.g. shape (k, 1) gives k horizons for every customer).
    """
    horizon, x, tx, t_obs = _broadcast(t, frequency, recency, T)
    shape = horizon.shape
    alive = _purchases_if_alive(params, horizon.ravel(), x.ravel(), t_obs.ravel())
    result: FloatArray = alive.reshape(shape) * np.exp(-_log_inverse_p_alive(params, x, tx, t_obs))
    return result


def _purchases_if_alive(
    params: BgNbdParams, horizon: FloatArray, x: FloatArray, t_obs: FloatArray
) -> FloatArray:
    """E[X(t) | alive, x, T]: the mean over p ~ Beta(a, b + x) of (1 - (1 + p s)^-k) / p,
    where k = r + x and s = t / (α + T) (the purchase rate integrated out).

    Closed form: c/(a-1) [1 - (1-z)^k 2F1(k, b+x; c; z)] with c = a+b+x-1, z = t/(α+T+t).
    """
    r, alpha, b = params.r, params.alpha, params.b
    a = params.a if abs(params.a - 1.0) > _SINGULAR_GAP else 1.0 + _SINGULAR_GAP
    k = r + x
    s = horizon / (alpha + t_obs)
    z = horizon / (alpha + t_obs + horizon)
    log_1mz = -np.log1p(s)
    c = a + b + x - 1.0
    c = np.where(np.abs(c) > _SINGULAR_GAP, c, _SINGULAR_GAP)
    # Euler's transformation rewrites (1-z)^k 2F1(k, b+x; c; z) as
    # (1-z)^(a-1) 2F1(a+b-1-r, a-1; c; z). A 2F1 series converges at z = 1 when its
    # c - A - B > 0, and the two forms have opposite c - A - B (a-1-k and k-a+1), so each
    # customer gets the form that stays finite as z nears 1: the first for light buyers, the
    # second for heavy ones, whose first form overflows to inf * 0.
    light = a - 1.0 - k >= 0
    heavy = ~light
    power_hyp = np.empty_like(z)
    with np.errstate(all="ignore"):  # whatever overflows is caught below and recomputed
        power_hyp[light] = np.exp(k[light] * log_1mz[light]) * special.hyp2f1(
            k[light], b + x[light], c[light], z[light]
        )
        power_hyp[heavy] = np.exp((a - 1.0) * log_1mz[heavy]) * special.hyp2f1(
            a + b - 1.0 - r, a - 1.0, c[heavy], z[heavy]
        )
        result: FloatArray = c / (a - 1.0) * (1.0 - power_hyp)
    # Every valid value lies between those at p = 1 and p = 0. scipy's hyp2f1 overflows or
    # drifts for parameters in the thousands near z = 1; recompute whatever falls outside.
    low = -np.expm1(-k * np.log1p(s))
    high = k * s
    off = ~((result >= low * (1 - _BOUND_SLACK)) & (result <= high * (1 + _BOUND_SLACK)))
    if np.any(off):
        result[off] = _purchases_if_alive_by_quadrature(a, b + x[off], k[off], s[off])
    return np.clip(result, low, high)


def _tanh_sinh_rule(step: float = 1 / 16, reach: float = 3.5) -> tuple[FloatArray, FloatArray]:
    """Nodes in (0, 1) and weights summing to 1 of the tanh-sinh rule: its nodes crowd the
    ends, so it stays accurate when the integrand has an algebraic singularity there."""
    tau = np.arange(-reach, reach + step / 2, step)
    spread = np.pi * np.sinh(tau)
    nodes = special.expit(spread)
    weights = np.cosh(tau) * nodes * special.expit(-spread)
    return nodes, weights / weights.sum()


_TANH_SINH: Final = _tanh_sinh_rule()


def _purchases_if_alive_by_quadrature(
    a: float, b_x: FloatArray, k: FloatArray, s: FloatArray
) -> FloatArray:
    """E over p ~ Beta(a, b + x) of (1 - (1 + p s)^-k) / p, by quadrature over the quantile.

    The fallback for the rare inputs where hyp2f1 fails. Integrating over the Beta quantile
    follows the mass wherever it sits; splitting at p = 1/2 keeps each half smooth even when
    the mass piles up at both ends (a, b + x < 1), each half taken from its own tail so that
    neither loses precision near p = 1. Customers go in blocks to bound the memory used.
    """
    nodes, weights = _TANH_SINH
    result = np.empty(b_x.size)
    for first in range(0, b_x.size, _QUADRATURE_BLOCK):
        block = slice(first, first + _QUADRATURE_BLOCK)
        # The quantiles depend on b + x only, and betaincinv is the expensive part.
        shape_b, which = np.unique(b_x[block], return_inverse=True)
        shape_b = shape_b[:, np.newaxis]
        below = special.betainc(a, shape_b, 0.5)
        above = special.betainc(shape_b, a, 0.5)
        p_below = special.betaincinv(a, shape_b, below * nodes)[which]
        p_above = 1.0 - special.betaincinv(shape_b, a, above * nodes)[which]
        y_scale, shape_k = s[block, np.newaxis], k[block, np.newaxis]
        mean = below[which] * (_per_unit_rate(p_below * y_scale, shape_k) @ weights[:, None])
        mean += above[which] * (_per_unit_rate(p_above * y_scale, shape_k) @ weights[:, None])
        result[block] = (shape_k * y_scale * mean)[:, 0]
    return result


def _per_unit_rate(y: FloatArray, k: FloatArray) -> FloatArray:
    """(1 - (1 + y)^-k) / (k y), which tends to 1 as y -> 0."""
    positive = y > 0
    safe = np.where(positive, y, 1.0)
    result: FloatArray = np.where(positive, -np.expm1(-k * np.log1p(safe)) / (k * safe), 1.0)
    return result


# ---------------------------------------------------------------------------------------------
# Gamma-Gamma


def _gamma_gamma_objective(x: FloatArray, monetary: FloatArray, penalty: float) -> Objective:
    """Mean negative log-likelihood over log(p, q, v) with its analytic gradient.

    Per customer: ln Γ(px+q) - ln Γ(px) - ln Γ(q) + q ln v + (px-1) ln m + px ln x
                  - (px+q) ln(x m + v).
    """
    total = float(x.size)
    distinct_x, x_counts = _weights_by_value(x, np.ones_like(x))
    log_m = np.log(monetary)
    log_x = np.log(x)
    spent = x * monetary
    x_log_xm = x @ (log_m + log_x)

    def objective(theta: FloatArray) -> tuple[float, FloatArray]:
        params = np.exp(theta)
        p, q, v = params
        px = p * distinct_x
        log_spent_v = np.log(spent + v)
        psi_pxq = special.digamma(px + q)
        log_likelihood = (
            x_counts @ (special.gammaln(px + q) - special.gammaln(px))
            + total * (q * np.log(v) - special.gammaln(q))
            + p * x_log_xm
            - np.sum(log_m)
            - (p * x + q) @ log_spent_v
        )
        gradient = np.array(
            [
                (x_counts * distinct_x) @ (psi_pxq - special.digamma(px))
                + x_log_xm
                - x @ log_spent_v,
                x_counts @ psi_pxq + total * (np.log(v) - special.digamma(q)) - np.sum(log_spent_v),
                total * q / v - np.sum((p * x + q) / (spent + v)),
            ]
        )
        # The penalty leaves v alone so that it does not depend on the currency unit.
        shrunk = np.array([1.0, 1.0, 0.0])
        value = -float(log_likelihood) / total + penalty * float(np.sum(shrunk * theta**2))
        grad = -gradient * params / total + 2.0 * penalty * shrunk * theta
        return value, grad

    return objective


def fit_gamma_gamma(
    frequency: ArrayLike, monetary: ArrayLike, *, penalty: float = 0.0
) -> GammaGammaParams:
    """Fit the Gamma-Gamma spend model by maximum likelihood on the repeat buyers (x > 0).

    Repeat buyers whose average spend is zero or less (refunds) are left out: the model is
    for positive values, and a few of them should not stop the fit. The model assumes spend
    per transaction is independent of purchase frequency. ``penalty`` adds
    penalty * (ln² p + ln² q) to the mean negative log-likelihood, as in fit_bg_nbd.
    """
    x, m = _columns(frequency=frequency, monetary=monetary)
    repeat = x > 0
    usable = repeat & (m > 0)
    x, m = x[usable], m[usable]
    if x.size < MIN_CUSTOMERS:
        refunded = int(np.count_nonzero(repeat)) - x.size
        raise ClvFitError(
            f"the spend model needs at least {MIN_CUSTOMERS} repeat buyers (customers with "
            f"frequency > 0) with a positive average spend, got {x.size}"
            + (f" ({refunded} more spent zero or less)" if refunded else "")
            + "; import more order history before fitting"
        )
    # Working in units of the mean spend puts v near 1 whatever the currency.
    scale = float(m.mean())
    start = np.log(np.array([1.0, 2.0, 1.0]))
    theta = _minimise(_gamma_gamma_objective(x, m / scale, penalty), start, "Gamma-Gamma")
    p, q, v = (float(value) for value in np.exp(theta))
    if q <= 1.0:
        raise ClvFitError(
            f"the fitted spend distribution has no finite mean (q = {q:.3g} <= 1), which "
            "happens when a few orders are extreme; cap order values (e.g. at the 99.9th "
            "percentile) and refit"
        )
    return GammaGammaParams(p=p, q=q, v=v * scale)


def expected_spend(
    params: GammaGammaParams, frequency: ArrayLike, monetary: ArrayLike
) -> FloatArray:
    """Expected value of each customer's future transactions: E[M | x, m] = p(v + x m)/(px + q - 1).

    A weighted mean of the population mean p v / (q - 1) and the customer's own average, which
    counts for more the more repeat purchases back it; x = 0 gives the population mean.
    """
    if params.q <= 1.0:
        raise ValueError(f"expected spend needs q > 1 (a finite mean spend), got q = {params.q}")
    x, m = _broadcast(frequency, monetary)
    spent = np.where(x > 0, x * m, 0.0)
    result: FloatArray = params.p * (params.v + spent) / (params.p * x + params.q - 1.0)
    return result


# ---------------------------------------------------------------------------------------------
# Both together


def fit_clv(
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary: ArrayLike,
    time_unit: str = "days",
    *,
    penalty: float = 0.0,
) -> FitResult:
    """Fit BG/NBD and Gamma-Gamma on the same customers; ``time_unit`` only labels the result."""
    bg_nbd, log_likelihood = fit_bg_nbd(frequency, recency, T, penalty=penalty)
    gamma_gamma = fit_gamma_gamma(frequency, monetary, penalty=penalty)
    customers = int(np.count_nonzero(np.asarray(T, dtype=np.float64) > 0))
    return FitResult(bg_nbd, gamma_gamma, customers, log_likelihood, time_unit)


def customer_lifetime_value(
    bg_nbd: BgNbdParams,
    gamma_gamma: GammaGammaParams,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary: ArrayLike,
    horizon: float,
    *,
    annual_discount_rate: float = 0.0,
    units_per_year: float | None = None,
    steps: int = 12,
) -> FloatArray:
    """Expected revenue from each customer over the next ``horizon`` time units.

    Undiscounted (the default) it is expected purchases over the horizon times expected spend.
    With ``annual_discount_rate`` d, the horizon is cut into ``steps`` equal periods (monthly
    for a one-year horizon) and the purchases expected in each are discounted by
    (1 + d)^-(end of period in years), so revenue counts as earned at the end of its period;
    ``units_per_year`` (365 for days) converts the time unit to years. Discounting costs
    ``steps`` evaluations of expected_purchases.
    """
    spend = expected_spend(gamma_gamma, frequency, monetary)
    if annual_discount_rate == 0.0:
        return expected_purchases(bg_nbd, horizon, frequency, recency, T) * spend
    if units_per_year is None:
        raise ValueError("discounting needs units_per_year (365 when times are in days)")
    ends = horizon * np.arange(1, steps + 1) / steps
    cumulative = expected_purchases(bg_nbd, ends[:, np.newaxis], frequency, recency, T)
    per_period = np.diff(cumulative, axis=0, prepend=0.0)
    discount = (1.0 + annual_discount_rate) ** -(ends / units_per_year)
    result: FloatArray = (discount @ per_period) * spend
    return result


# ---------------------------------------------------------------------------------------------
# Simulation


def simulate_bg_nbd(
    params: BgNbdParams, customers: int, T: ArrayLike, rng: np.random.Generator
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Draw (frequency, recency, T) from the BG/NBD story: for tests, benchmarks and what-ifs.

    Each customer buys at rate λ ~ Gamma(r, rate α) and, after each repeat purchase, leaves
    with probability p ~ Beta(a, b). ``T`` is one observation length for everyone or one per
    customer (customers who joined at different times).
    """
    t_obs = np.broadcast_to(np.asarray(T, dtype=np.float64), (customers,)).copy()
    rate = rng.gamma(params.r, 1.0 / params.alpha, customers)
    # Beta draws underflow to 0 when a is small, and a geometric draw needs p > 0.
    dropout = np.maximum(rng.beta(params.a, params.b, customers), np.finfo(np.float64).tiny)
    # Without dropout the purchases in (0, T] would be Poisson(λT); the customer leaves right
    # after purchase number K ~ Geometric(p), so only the first min(N, K) of them happen.
    arrivals = rng.poisson(rate * t_obs)
    frequency = np.minimum(arrivals, rng.geometric(dropout))
    # Given N arrivals in (0, T] their times are N sorted uniforms, and the x-th of those is
    # T * Beta(x, N - x + 1): drawing it directly avoids simulating every purchase.
    repeat = frequency > 0
    recency = np.zeros(customers)
    recency[repeat] = t_obs[repeat] * rng.beta(
        frequency[repeat], arrivals[repeat] - frequency[repeat] + 1
    )
    return frequency.astype(np.int64), recency, t_obs


def simulate_spend(
    params: GammaGammaParams, frequency: ArrayLike, rng: np.random.Generator
) -> FloatArray:
    """Draw each customer's average repeat-purchase value from the Gamma-Gamma story.

    Each customer has nu ~ Gamma(q, rate v) and transactions ~ Gamma(p, rate nu); customers
    without repeat purchases get 0.
    """
    x = np.asarray(frequency, dtype=np.float64)
    repeat = x > 0
    nu = rng.gamma(params.q, 1.0 / params.v, int(np.count_nonzero(repeat)))
    # A sum of x Gamma(p, nu) values is Gamma(p x, nu), so their mean is Gamma(p x, x nu).
    spend = np.zeros(x.shape)
    spend[repeat] = rng.gamma(params.p * x[repeat], 1.0 / (nu * x[repeat]))
    return spend
