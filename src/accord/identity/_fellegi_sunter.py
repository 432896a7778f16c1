"""The Fellegi-Sunter match model: agreement levels weighed by how much likelier a match makes them.

For each comparison the model holds ``m[level]``, the chance of that agreement level when the
two records are the same person, and ``u[level]``, its chance when they are not. A pair's
*weight* is the sum over compared fields of ``log2(m / u)`` (missing fields add nothing, as if
conditionally independent evidence); with the *prior*, the chance that two records drawn at
random from the estimation data are the same person, it gives the posterior match probability.

:func:`estimate` learns ``m``, ``u`` and the prior without labels, by expectation-maximisation
over every pair of records: the candidate pairs from blocking are enumerated, and the far more
numerous other pairs are represented by a random sample weighted up to their number. The
sample is where ``u`` is learned (almost every pair of records is a non-match); the candidates
are where ``m`` is. The prior is therefore a per-pair figure for a population the size of the
estimation data; a resolver over a much larger population sees more candidates per record and
may lower it (each tenfold growth is ``log2(10)`` ≈ 3.3 bits of extra evidence needed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, StrictFloat, StrictInt, StrictStr, ValidationError

from accord.errors import InputError
from accord.identity._blocking import (
    DEFAULT_BLOCKING,
    Blocking,
    candidate_pairs,
    sample_non_candidates,
)
from accord.identity._comparison import (
    DEFAULT_COMPARISONS,
    Comparison,
    ComparisonKind,
    compare,
    comparison_vectors,
)
from accord.identity._normalise import IdentityRecord

__all__ = [
    "LINK_THRESHOLD",
    "REVIEW_THRESHOLD",
    "SAMPLE_SIZE",
    "Decision",
    "FieldScore",
    "MatchModel",
    "MatchScore",
    "default_model",
    "estimate",
    "fit",
]

Decision = Literal["link", "possible", "none"]
"""``link``: the same person; ``possible``: a person should look; ``none``: different people."""

LINK_THRESHOLD: Final = 0.9
"""Posterior at or above which a pair is linked without review.

Linking is the costly mistake: a wrong merge shows one person another's data and is hard to
undo, a missed one leaves a duplicate that a later record or a review can still join. Linking
when ``p ≥ c_fp / (c_fp + c_fn)`` minimises expected cost, so 0.9 says a false link costs about
nine missed ones.
"""

REVIEW_THRESHOLD: Final = 0.5
"""Posterior at or above which an unlinked pair goes to review: a match is at least as likely
as not, so a person's look is more likely than not to find one."""

SAMPLE_SIZE: Final = 10_000
"""How many non-candidate pairs :func:`estimate` draws to stand for all the others."""

_FORMAT: Final = "accord.identity.match_model/1"
_HINT: Final = (
    "pass the object MatchModel.to_json() returned, unchanged; if it was edited or is from "
    "another version, estimate the model again"
)
_PSEUDO_COUNT: Final = 0.5
_MATCH_EXACT_SHARE: Final = 0.8

FloatArray = npt.NDArray[np.float64]
LevelArray = npt.NDArray[np.int8]


@dataclass(frozen=True, slots=True)
class FieldScore:
    """One comparison's share of a score.

    Attributes:
        field: The field compared.
        level: Its agreement level, ``None`` when a value was missing.
        weight: ``log2(m / u)`` at that level; ``0.0`` when missing.
    """

    field: str
    level: int | None
    weight: float


@dataclass(frozen=True, slots=True)
class MatchScore:
    """How strongly the evidence says two records are the same person.

    Attributes:
        weight: The sum of the fields' weights, in bits (log2 likelihood ratio).
        probability: The posterior match probability, given the model's prior.
        fields: Each comparison's level and weight, in the model's order.
    """

    weight: float
    probability: float
    fields: tuple[FieldScore, ...]


@dataclass(frozen=True, slots=True)
class MatchModel:
    """Fellegi-Sunter parameters and the decision thresholds.

    Attributes:
        comparisons: The comparisons, in order.
        m: For each comparison, the probability of each level among matches (sums to 1).
        u: For each comparison, the probability of each level among non-matches (sums to 1).
        prior: The probability that two records drawn at random are the same person.
        link_threshold: Posterior at or above which a pair is a ``link``.
        review_threshold: Posterior at or above which an unlinked pair is ``possible``.
        iterations: How many EM iterations estimated the parameters (0 if set by hand).
    """

    comparisons: tuple[Comparison, ...]
    m: tuple[tuple[float, ...], ...]
    u: tuple[tuple[float, ...], ...]
    prior: float
    link_threshold: float = LINK_THRESHOLD
    review_threshold: float = REVIEW_THRESHOLD
    iterations: int = 0
    _weights: tuple[tuple[float, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem is not None:
            raise ValueError(f"{problem[0]}: {problem[1]}")
        weights = tuple(
            tuple(math.log2(mi / ui) for mi, ui in zip(m, u, strict=True))
            for m, u in zip(self.m, self.u, strict=True)
        )
        object.__setattr__(self, "_weights", weights)

    @property
    def prior_weight(self) -> float:
        """The prior as log2 odds: what a pair's weight must overcome to be even odds."""
        return math.log2(self.prior / (1.0 - self.prior))

    def score(self, a: IdentityRecord, b: IdentityRecord) -> MatchScore:
        """Compare two records on every comparison and weigh the evidence."""
        fields = []
        for comparison, weights in zip(self.comparisons, self._weights, strict=True):
            level = compare(comparison, a, b)
            fields.append(
                FieldScore(comparison.field, level, 0.0 if level is None else weights[level])
            )
        weight = math.fsum(item.weight for item in fields)
        return MatchScore(weight, self.probability(weight), tuple(fields))

    def probability(self, weight: float) -> float:
        """The posterior match probability of a pair with ``weight`` bits of evidence."""
        odds = weight + self.prior_weight
        if odds >= 0:
            return 1.0 / (1.0 + math.pow(2.0, -odds))
        return math.pow(2.0, odds) / (1.0 + math.pow(2.0, odds))

    def classify(self, score: MatchScore) -> Decision:
        """``link``, ``possible`` or ``none`` by the score's posterior and the thresholds."""
        return self.decide(score.probability)

    def decide(self, probability: float) -> Decision:
        """The decision for a posterior match probability."""
        if probability >= self.link_threshold:
            return "link"
        if probability >= self.review_threshold:
            return "possible"
        return "none"

    def weights_of(self, levels: LevelArray) -> FloatArray:
        """The weight of each comparison vector (rows of levels, ``-1`` for missing)."""
        total = np.zeros(levels.shape[0])
        for column, weights in enumerate(self._weights):
            table = np.asarray(weights)
            observed = levels[:, column]
            total += np.where(observed >= 0, table[np.maximum(observed, 0)], 0.0)
        return total

    def to_json(self) -> dict[str, Any]:
        """The model as a JSON-compatible object, for :meth:`from_json`."""
        return {
            "format": _FORMAT,
            "comparisons": [
                {
                    "field": comparison.field,
                    "kind": comparison.kind,
                    "similarity": list(comparison.similarity),
                    "max_edits": list(comparison.max_edits),
                    "swap_with": comparison.swap_with,
                    "m": list(m),
                    "u": list(u),
                }
                for comparison, m, u in zip(self.comparisons, self.m, self.u, strict=True)
            ],
            "prior": self.prior,
            "link_threshold": self.link_threshold,
            "review_threshold": self.review_threshold,
            "iterations": self.iterations,
        }

    @classmethod
    def from_json(cls, data: object) -> MatchModel:
        """Rebuild a model from what :meth:`to_json` returned (parsed JSON).

        Raises:
            InputError: ``data`` is not a valid saved model; the message names the field.
        """
        try:
            saved = _SavedModel.model_validate(data)
        except ValidationError as error:
            first = error.errors()[0]
            where = _path(first["loc"])
            raise InputError(f"match model: {where}: {first['msg']}", hint=_HINT) from error
        comparisons = []
        for index, item in enumerate(saved.comparisons):
            try:
                comparisons.append(
                    Comparison(
                        item.field,
                        item.kind,
                        similarity=item.similarity,
                        max_edits=item.max_edits,
                        swap_with=item.swap_with,
                    )
                )
            except ValueError as error:
                raise InputError(
                    f"match model: comparisons[{index}]: {error}", hint=_HINT
                ) from error
        try:
            return cls(
                comparisons=tuple(comparisons),
                m=tuple(item.m for item in saved.comparisons),
                u=tuple(item.u for item in saved.comparisons),
                prior=saved.prior,
                link_threshold=saved.link_threshold,
                review_threshold=saved.review_threshold,
                iterations=saved.iterations,
            )
        except ValueError as error:
            raise InputError(f"match model: {error}", hint=_HINT) from error


def estimate(
    records: Sequence[IdentityRecord],
    *,
    comparisons: Sequence[Comparison] = DEFAULT_COMPARISONS,
    blocking: Blocking = DEFAULT_BLOCKING,
    other: Sequence[IdentityRecord] | None = None,
    max_iterations: int = 200,
    tolerance: float = 1e-6,
    sample_size: int = SAMPLE_SIZE,
    seed: int = 0,
) -> MatchModel:
    """Estimate a model from unlabelled records by expectation-maximisation.

    Args:
        records: The records to deduplicate, or the first source of a linkage.
        comparisons: The comparisons the model uses.
        blocking: How candidate pairs are found (as they will be when the model is used).
        other: The second source of a linkage; ``None`` for deduplication.
        max_iterations: Stop after this many EM iterations.
        tolerance: Stop when no probability changes by more than this (relatively, for the
            prior) in one iteration.
        sample_size: How many non-candidate pairs to draw to stand for all the others.
        seed: Seed of the random sample, so that an estimate can be repeated exactly.

    Returns:
        The model, with the default thresholds and its iteration count.

    Raises:
        InputError: There is not a single pair of records to learn from.
    """
    if len(records) < 2 if other is None else not records or not other:
        raise InputError(
            "estimating a match model needs at least one pair of records, "
            f"got {len(records)} record(s)" + ("" if other is None else f" and {len(other)}"),
            hint="load the records first, or use default_model() until there are some",
        )
    right = records if other is None else other
    pairs = candidate_pairs(records, blocking, other=other)
    sample, sample_weight = sample_non_candidates(
        len(records), None if other is None else len(other), pairs, size=sample_size, seed=seed
    )
    return fit(
        comparisons,
        comparison_vectors(comparisons, records, right, pairs),
        comparison_vectors(comparisons, records, right, sample),
        sample_weight=sample_weight,
        max_iterations=max_iterations,
        tolerance=tolerance,
    )


def default_model(comparisons: Sequence[Comparison] = DEFAULT_COMPARISONS) -> MatchModel:
    """A model set by hand, for resolving records before there are enough to estimate one.

    The probabilities of the default comparisons are rounded from EM estimates on synthetic
    person records (no labels used): names agree exactly for about 60% of matches and 0.3% of
    non-matches, birth dates for 90% and 0.01%, national ids for 87% and one in a million.
    Any other comparison starts with ``m == u``, so it weighs nothing until estimated. The
    prior, 0.001, is the chance that two records of a population of about a thousand, where a
    person has one other record, are the same person.
    """
    m: list[tuple[float, ...]] = []
    u: list[tuple[float, ...]] = []
    for comparison in comparisons:
        known = _DEFAULT_LEVELS.get(comparison.field)
        if known is None or len(known[0]) != comparison.levels - 1:
            m.append((1.0 / comparison.levels,) * comparison.levels)
            u.append(m[-1])
            continue
        for target, agreeing in ((m, known[0]), (u, known[1])):
            target.append((1.0 - math.fsum(agreeing), *agreeing))
    return MatchModel(comparisons=tuple(comparisons), m=tuple(m), u=tuple(u), prior=1e-3)


def fit(
    comparisons: Sequence[Comparison],
    candidates: LevelArray,
    sample: LevelArray,
    *,
    sample_weight: float,
    max_iterations: int = 200,
    tolerance: float = 1e-6,
) -> MatchModel:
    """Fit ``m``, ``u`` and the prior to comparison vectors by EM.

    Args:
        comparisons: What the columns of the vectors are.
        candidates: Vectors of every candidate pair (each stands for itself).
        sample: Vectors of sampled non-candidate pairs.
        sample_weight: How many pairs each sampled vector stands for.
        max_iterations: Stop after this many iterations.
        tolerance: Stop when no probability moves more than this in an iteration.
    """
    if max_iterations < 1 or tolerance <= 0:
        raise ValueError("EM needs max_iterations ≥ 1 and a positive tolerance")
    if len(candidates) + len(sample) == 0:
        raise ValueError("EM needs at least one comparison vector")
    patterns, counts = _patterns(candidates, sample, sample_weight)
    sizes = [comparison.levels for comparison in comparisons]
    # A level no sampled pair showed is only known to be rarer than one sampled pair in the
    # sample, so u is smoothed at the sample's resolution, not at one pair in the population.
    u_pseudo = _PSEUDO_COUNT * max(1.0, sample_weight) if len(sample) else _PSEUDO_COUNT
    u = [_distribution(patterns[:, k], counts, size, u_pseudo) for k, size in enumerate(sizes)]
    m = [_initial_m(size) for size in sizes]
    # Start as if half the candidates matched; EM moves the prior to what the data says.
    prior = float(np.clip(len(candidates) / (2.0 * counts.sum()), 1e-9, 0.5))
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        log_odds = math.log(prior / (1.0 - prior)) + _log_ratio(patterns, m, u)
        posterior = 1.0 / (1.0 + np.exp(-np.clip(log_odds, -700.0, 700.0)))
        matched = counts * posterior
        unmatched = counts - matched
        new_m = [
            _distribution(patterns[:, k], matched, s, _PSEUDO_COUNT) for k, s in enumerate(sizes)
        ]
        new_u = [_distribution(patterns[:, k], unmatched, s, u_pseudo) for k, s in enumerate(sizes)]
        new_prior = float(np.clip(matched.sum() / counts.sum(), 1e-12, 0.5))
        moves = [float(np.abs(a - b).max()) for a, b in zip(new_m + new_u, m + u, strict=True)]
        change = max(*moves, abs(new_prior - prior) / prior)
        m, u, prior = new_m, new_u, new_prior
        if change < tolerance:
            break
    return MatchModel(
        comparisons=tuple(comparisons),
        m=tuple(tuple(float(p) for p in dist) for dist in m),
        u=tuple(tuple(float(p) for p in dist) for dist in u),
        prior=prior,
        iterations=iterations,
    )


def _patterns(
    candidates: LevelArray, sample: LevelArray, sample_weight: float
) -> tuple[LevelArray, FloatArray]:
    # EM only needs each distinct vector once with its total weight, which is far fewer rows.
    stacked = np.concatenate([candidates, sample])
    weights = np.concatenate([np.ones(len(candidates)), np.full(len(sample), sample_weight)])
    patterns, inverse = np.unique(stacked, axis=0, return_inverse=True)
    counts: FloatArray = np.bincount(
        inverse.reshape(-1), weights=weights, minlength=len(patterns)
    ).astype(np.float64)
    return patterns.astype(np.int8), counts


def _distribution(
    levels: LevelArray, weights: FloatArray, size: int, pseudo_count: float
) -> FloatArray:
    observed = levels >= 0
    totals = np.bincount(levels[observed], weights=weights[observed], minlength=size)
    smoothed: FloatArray = (totals + pseudo_count) / (totals.sum() + pseudo_count * size)
    return smoothed


def _initial_m(size: int) -> FloatArray:
    rest = (1.0 - _MATCH_EXACT_SHARE) / (size - 1)
    return np.array([rest] * (size - 1) + [_MATCH_EXACT_SHARE])


def _log_ratio(patterns: LevelArray, m: list[FloatArray], u: list[FloatArray]) -> FloatArray:
    total = np.zeros(len(patterns))
    for k, (mk, uk) in enumerate(zip(m, u, strict=True)):
        observed = patterns[:, k]
        ratio = np.log(mk) - np.log(uk)
        total += np.where(observed >= 0, ratio[np.maximum(observed, 0)], 0.0)
    return total


# Per field: (m, u) of each level above 0 (disagreement takes the rest), weakest first.
_DEFAULT_LEVELS: Final[Mapping[str, tuple[tuple[float, ...], tuple[float, ...]]]] = (
    MappingProxyType(
        {
            "given_name": ((0.02, 0.05, 0.18, 0.65), (4e-3, 1.5e-3, 6e-4, 4e-3)),
            "surname": ((0.02, 0.06, 0.25, 0.58), (1.5e-3, 1e-3, 7e-4, 5e-3)),
            "birth_date": ((0.01, 0.03, 0.90), (1.4e-2, 7e-4, 1e-4)),
            "national_id": ((0.01, 0.07, 0.87), (3e-4, 1e-5, 1e-6)),
            "email": ((0.05, 0.85), (1e-5, 1e-6)),
            "phone": ((0.05, 0.85), (1e-5, 1e-6)),
            "street_number": ((0.06, 0.84), (0.2, 0.015)),
            "address": ((0.02, 0.30, 0.58), (7e-3, 1e-4, 1e-3)),
            "address_2": ((0.10, 0.30, 0.50), (1e-3, 3e-4, 5e-4)),
            "locality": ((0.10, 0.15, 0.66), (6e-4, 3e-4, 1e-3)),
            "postcode": ((0.20, 0.76), (1.5e-2, 1e-3)),
            "state": ((0.95,), (0.2,)),
            "country": ((0.97,), (0.5,)),
        }
    )
)


class _SavedComparison(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: StrictStr
    kind: ComparisonKind
    similarity: tuple[StrictFloat, ...] = ()
    max_edits: tuple[StrictInt, ...] = ()
    swap_with: StrictStr | None = None
    m: tuple[StrictFloat, ...]
    u: tuple[StrictFloat, ...]


class _SavedModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["accord.identity.match_model/1"]
    comparisons: tuple[_SavedComparison, ...]
    prior: StrictFloat
    link_threshold: StrictFloat
    review_threshold: StrictFloat
    iterations: StrictInt = 0


def _path(location: tuple[int | str, ...]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text or "model"


def _problem(model: MatchModel) -> tuple[str, str] | None:
    comparisons, m, u = model.comparisons, model.m, model.u
    if not comparisons:
        return "comparisons", "a model needs at least one comparison"
    if len(m) != len(comparisons) or len(u) != len(comparisons):
        return "m", "m and u need one distribution per comparison"
    for index, comparison in enumerate(comparisons):
        for name, distribution in (("m", m[index]), ("u", u[index])):
            where = f"comparisons[{index}].{name}"
            if len(distribution) != comparison.levels:
                return where, f"{comparison.field} has {comparison.levels} levels, not " + str(
                    len(distribution)
                )
            if not all(0.0 < p <= 1.0 for p in distribution):
                return where, "every probability must be in (0, 1]"
            if abs(math.fsum(distribution) - 1.0) > 1e-6:
                return where, "the probabilities must sum to 1"
    if not 0.0 < model.prior < 1.0:
        return "prior", f"the prior must be strictly between 0 and 1, not {model.prior}"
    if not 0.0 < model.review_threshold <= model.link_threshold < 1.0:
        return "review_threshold", "need 0 < review_threshold ≤ link_threshold < 1"
    if model.iterations < 0:
        return "iterations", "the iteration count cannot be negative"
    return None
