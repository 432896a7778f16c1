"""Differences in success rate between two values of a decision point, with their intervals.

Every estimate here is one computation: a weighted difference of success rates within strata,

    d = sum_k w_k (p1_k - p0_k) / sum_k w_k,    w_k = n1_k n0_k / (n1_k + n0_k),

where ``p1_k`` and ``p0_k`` are the success rates of the value and of the reference in stratum
``k``, and the weights are Mantel-Haenszel's for a risk difference. Strata holding only one of
the two values compare nothing and are left out. With a single stratum ``d`` is the plain
difference in means, which is what a randomised comparison needs; with strata made of earlier
decisions it is the observational estimate adjusted for them.

``d`` is linear in the runs' outcomes, ``d = sum_i c_i y_i``, so its variance is estimated
cluster-robustly: runs of one subject are summed before squaring (``sum_g (sum_{i in g} c_i
r_i)^2`` with ``r_i`` the run's residual, times ``G / (G - 1)``), because one subject's runs are
not independent and an experiment randomises subjects, not runs. The variance is never taken
below the binomial variance at Agresti-Caffo's adjusted rates (``(s + 1) / (n + 2)``), so that a
value that always (or never) succeeded still gets an interval of honest width. The interval is
``d ± z * se``, clipped to [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

__all__ = ["Difference", "difference", "wilson", "z_value"]

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Difference:
    """A value's success rate minus the reference's, with its interval.

    Attributes:
        estimate: the (weighted) difference in success rate.
        low: the lower end of the interval.
        high: the upper end of the interval.
        runs: the value's runs that were compared (in strata holding both values).
        reference_runs: the reference's runs that were compared.
        left_out: runs in strata that hold only one of the two values.
        strata: the strata compared.
    """

    estimate: float
    low: float
    high: float
    runs: int
    reference_runs: int
    left_out: int
    strata: int


def z_value(confidence: float) -> float:
    """The standard normal quantile of a two-sided ``confidence`` interval."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(successes: int, runs: int, confidence: float) -> tuple[float, float]:
    """Wilson's score interval for a success rate (0 to 1 when there are no runs)."""
    if runs == 0:
        return 0.0, 1.0
    z = z_value(confidence)
    rate = successes / runs
    centre = (rate + z * z / (2 * runs)) / (1 + z * z / runs)
    half = z / (1 + z * z / runs) * math.sqrt(rate * (1 - rate) / runs + z * z / (4 * runs**2))
    return max(0.0, centre - half), min(1.0, centre + half)


def difference(
    is_value: Bools,
    success: Bools,
    strata: Ints,
    clusters: Ints,
    *,
    confidence: float,
) -> Difference:
    """The value's success rate minus the reference's, within strata, as the module says.

    Args:
        is_value: per run, whether it took the value (else the reference).
        success: per run, whether it succeeded.
        strata: per run, its stratum, numbered from 0.
        clusters: per run, its cluster (the subject), numbered from 0.
        confidence: of the interval, e.g. 0.95.
    """
    size = int(strata.max()) + 1 if len(strata) else 0
    n1 = np.bincount(strata[is_value], minlength=size).astype(float)
    n0 = np.bincount(strata[~is_value], minlength=size).astype(float)
    s1 = np.bincount(strata[is_value], weights=success[is_value], minlength=size)
    s0 = np.bincount(strata[~is_value], weights=success[~is_value], minlength=size)
    both = (n1 > 0) & (n0 > 0)
    kept = both[strata]
    if not both.any():
        return Difference(0.0, -1.0, 1.0, 0, 0, len(strata), 0)
    n1, n0, s1, s0 = n1[both], n0[both], s1[both], s0[both]
    index = np.cumsum(both) - 1
    stratum = index[strata[kept]]
    treated = is_value[kept]
    outcome = success[kept].astype(float)
    weights = n1 * n0 / (n1 + n0)
    share = weights / weights.sum()
    p1, p0 = s1 / n1, s0 / n0
    estimate = float(np.sum(share * (p1 - p0)))
    coefficient = np.where(treated, share[stratum] / n1[stratum], -share[stratum] / n0[stratum])
    residual = outcome - np.where(treated, p1[stratum], p0[stratum])
    _, cluster = np.unique(clusters[kept], return_inverse=True)
    sums = np.bincount(cluster, weights=coefficient * residual)
    groups = len(sums)
    robust = float(np.sum(sums**2)) * (groups / (groups - 1) if groups > 1 else 1.0)
    a1, a0 = (s1 + 1) / (n1 + 2), (s0 + 1) / (n0 + 2)
    floor = float(np.sum(share**2 * (a1 * (1 - a1) / (n1 + 2) + a0 * (1 - a0) / (n0 + 2))))
    half = z_value(confidence) * math.sqrt(max(robust, floor))
    return Difference(
        estimate=estimate,
        low=max(-1.0, estimate - half),
        high=min(1.0, estimate + half),
        runs=int(n1.sum()),
        reference_runs=int(n0.sum()),
        left_out=int(len(strata) - kept.sum()),
        strata=int(both.sum()),
    )
