"""How well an intent model knows when it does not know: risk, coverage and calibration.

A prediction is *auto-executed* at a threshold when it names an in-scope intent with
confidence at or above the threshold; it is *wrong* when that intent is not the true label (an
out-of-scope item auto-executed is wrong). *Coverage* is the share of all items auto-executed
and *risk* the share of auto-executed items that are wrong. ``oos_share`` reweights the
out-of-scope items so they make up that share of the total, to project figures onto traffic
with a different mix than the evaluation data; counts stay raw, coverage and risk are weighted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from accord.errors import InputError

__all__ = [
    "EvaluationReport",
    "RiskCoverageRow",
    "choose_threshold",
    "evaluate",
    "expected_calibration_error",
    "in_scope_accuracy",
    "out_of_scope_recall",
    "read_labelled",
    "risk_coverage",
]

_OUT_OF_SCOPE = "oos"


class Scored(Protocol):
    """What evaluation reads from a prediction (an ``IntentPrediction`` fits)."""

    @property
    def label(self) -> str: ...

    @property
    def confidence(self) -> float: ...


class _LabelledLine(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: StrictStr
    label: StrictStr


def read_labelled(path: str | Path) -> list[tuple[str, str]]:
    """Read ``{"text": ..., "label": ...}`` JSON lines; label ``"oos"`` means out of scope.

    Blank lines are skipped; other fields are ignored.

    Raises:
        InputError: the file cannot be read, or a line is not such an object (the message
            names the file and line number).
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read labelled examples ({error})") from error
    examples = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = _LabelledLine.model_validate_json(line)
        except ValidationError as error:
            problem = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'line'}: {e['msg']}"
                for e in error.errors()
            )
            raise InputError(
                f"{path}:{number}: not a labelled example ({problem})",
                hint='write one JSON object per line: {"text": "...", "label": "..."}',
            ) from error
        if not item.text.strip() or not item.label.strip():
            raise InputError(
                f"{path}:{number}: empty {'text' if not item.text.strip() else 'label'}",
                hint="every example needs a non-empty text and label",
            )
        examples.append((item.text, item.label))
    return examples


@dataclass(frozen=True, slots=True)
class RiskCoverageRow:
    """Risk and coverage at one threshold.

    Attributes:
        threshold: the confidence at or above which an in-scope prediction is auto-executed.
        auto_executed: how many items were auto-executed.
        coverage: the (weighted) share of all items auto-executed.
        wrong: how many auto-executed items were wrong.
        risk: the (weighted) share of auto-executed items that were wrong; 0.0 when none were.
    """

    threshold: float
    auto_executed: int
    coverage: float
    wrong: int
    risk: float


def _arrays(
    predictions: Sequence[Scored], labels: Sequence[str], oos_share: float | None
) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.float64]
]:
    if len(predictions) != len(labels):
        raise InputError(f"{len(predictions)} predictions but {len(labels)} labels")
    if not labels:
        raise InputError("nothing to evaluate: no labelled items")
    truth = np.asarray(labels)
    predicted = np.asarray([p.label for p in predictions])
    confidence = np.asarray([p.confidence for p in predictions], dtype=np.float64)
    in_scope = predicted != _OUT_OF_SCOPE
    wrong = predicted != truth
    weights = np.ones(len(labels))
    if oos_share is not None:
        if not 0.0 <= oos_share < 1.0:
            raise InputError(f"oos_share must be in [0, 1), not {oos_share}")
        is_oos = truth == _OUT_OF_SCOPE
        n_oos = int(is_oos.sum())
        n_in = len(labels) - n_oos
        if n_oos == 0 or n_in == 0:
            raise InputError("reweighting needs both in-scope and out-of-scope items")
        weights[is_oos] = oos_share / (1.0 - oos_share) * n_in / n_oos
    return confidence, in_scope, wrong, weights


def _row(
    threshold: float,
    confidence: npt.NDArray[np.float64],
    in_scope: npt.NDArray[np.bool_],
    wrong: npt.NDArray[np.bool_],
    weights: npt.NDArray[np.float64],
) -> RiskCoverageRow:
    auto = in_scope & (confidence >= threshold)
    auto_weight = float(weights[auto].sum())
    wrong_weight = float(weights[auto & wrong].sum())
    return RiskCoverageRow(
        threshold=threshold,
        auto_executed=int(auto.sum()),
        coverage=auto_weight / float(weights.sum()),
        wrong=int((auto & wrong).sum()),
        risk=wrong_weight / auto_weight if auto_weight > 0 else 0.0,
    )


def risk_coverage(
    predictions: Sequence[Scored],
    labels: Sequence[str],
    thresholds: Sequence[float],
    *,
    oos_share: float | None = None,
) -> list[RiskCoverageRow]:
    """Risk and coverage at each threshold, in the order given.

    Raises:
        InputError: the lengths differ, there are no items, or ``oos_share`` cannot apply.
    """
    arrays = _arrays(predictions, labels, oos_share)
    return [_row(float(t), *arrays) for t in thresholds]


def choose_threshold(
    predictions: Sequence[Scored],
    labels: Sequence[str],
    *,
    max_risk: float = 0.01,
    oos_share: float | None = None,
) -> float:
    """The lowest threshold whose risk on these (validation) items is at most ``max_risk``.

    The candidates are the distinct confidences of in-scope predictions; a threshold lets
    through every in-scope prediction with confidence ``>=`` it, so items tied at the threshold
    are all in or all out together. Risk need not fall as the threshold rises: the lowest
    qualifying candidate wins even if a higher one breaks the bound. Returns ``math.inf`` (no
    item is auto-executed) when no candidate qualifies.

    Raises:
        InputError: the lengths differ, there are no items, or ``oos_share`` cannot apply.
    """
    confidence, in_scope, wrong, weights = _arrays(predictions, labels, oos_share)
    candidates = confidence[in_scope]
    if candidates.size == 0:
        return math.inf
    order = np.argsort(-candidates, kind="stable")
    sorted_conf = candidates[order]
    auto = np.cumsum(weights[in_scope][order])
    bad = np.cumsum((weights * wrong)[in_scope][order])
    last_of_tie = np.r_[sorted_conf[1:] != sorted_conf[:-1], True]
    risks = bad[last_of_tie] / auto[last_of_tie]
    qualifying = np.nonzero(risks <= max_risk)[0]
    if qualifying.size == 0:
        return math.inf
    return float(sorted_conf[last_of_tie][qualifying[-1]])


def in_scope_accuracy(predictions: Sequence[Scored], labels: Sequence[str]) -> float:
    """The share of in-scope items whose predicted label is their true label.

    An in-scope item predicted out of scope counts as wrong.

    Raises:
        InputError: the lengths differ or no item is in scope.
    """
    if len(predictions) != len(labels):
        raise InputError(f"{len(predictions)} predictions but {len(labels)} labels")
    pairs = [(p.label, t) for p, t in zip(predictions, labels, strict=True) if t != _OUT_OF_SCOPE]
    if not pairs:
        raise InputError("no in-scope items to measure accuracy on")
    return sum(p == t for p, t in pairs) / len(pairs)


def out_of_scope_recall(predictions: Sequence[Scored], labels: Sequence[str]) -> float | None:
    """The share of out-of-scope items predicted out of scope; ``None`` when there are none."""
    hits = [
        p.label == _OUT_OF_SCOPE
        for p, t in zip(predictions, labels, strict=True)
        if t == _OUT_OF_SCOPE
    ]
    return sum(hits) / len(hits) if hits else None


def expected_calibration_error(
    predictions: Sequence[Scored], labels: Sequence[str], *, bins: int = 10
) -> float:
    """Expected calibration error of in-scope predictions over ``bins`` equal-width bins.

    The weighted mean, over bins, of ``|mean confidence - share correct|``; an out-of-scope item
    predicted in scope counts as incorrect. 0.0 when nothing was predicted in scope.
    """
    confidence, in_scope, wrong, _ = _arrays(predictions, labels, None)
    confidence, correct = confidence[in_scope], ~wrong[in_scope]
    if confidence.size == 0:
        return 0.0
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(confidence[members].mean() - correct[members].mean())
    return float(error)


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """What an evaluation found, ready to print.

    Attributes:
        corpus: what was evaluated (a name or path).
        items: how many labelled items.
        in_scope_accuracy: see :func:`in_scope_accuracy`.
        out_of_scope_recall: share of out-of-scope items predicted out of scope, if any.
        ece: see :func:`expected_calibration_error`.
        max_risk: the risk bound the threshold was chosen for.
        threshold: the auto-execution threshold (``inf``: nothing auto-executes).
        at_threshold: risk and coverage at ``threshold`` on these items.
        oos_share: the out-of-scope share coverage and risk were reweighted to, if any.
        curve: risk and coverage at other thresholds.
        notes: free-form facts worth printing (model digest, training time...).
    """

    corpus: str
    items: int
    in_scope_accuracy: float
    out_of_scope_recall: float | None
    ece: float
    max_risk: float
    threshold: float
    at_threshold: RiskCoverageRow
    oos_share: float | None = None
    curve: tuple[RiskCoverageRow, ...] = ()
    notes: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """The report as one JSON object (an infinite threshold becomes ``null``)."""
        return json.dumps(_finite(asdict(self)), sort_keys=True)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def evaluate(
    predictions: Sequence[Scored],
    labels: Sequence[str],
    *,
    threshold: float,
    corpus: str,
    max_risk: float = 0.01,
    oos_share: float | None = None,
    curve: Sequence[float] = (),
    notes: dict[str, Any] | None = None,
) -> EvaluationReport:
    """Measure predictions against labels at a threshold chosen elsewhere."""
    (at_threshold,) = risk_coverage(predictions, labels, [threshold], oos_share=oos_share)
    has_in_scope = any(t != _OUT_OF_SCOPE for t in labels)
    return EvaluationReport(
        corpus=corpus,
        items=len(labels),
        in_scope_accuracy=in_scope_accuracy(predictions, labels) if has_in_scope else 0.0,
        out_of_scope_recall=out_of_scope_recall(predictions, labels),
        ece=expected_calibration_error(predictions, labels),
        max_risk=max_risk,
        threshold=threshold,
        at_threshold=at_threshold,
        oos_share=oos_share,
        curve=tuple(risk_coverage(predictions, labels, curve, oos_share=oos_share))
        if curve
        else (),
        notes=dict(notes or {}),
    )
