"""The embedded intent model beside the plain baseline on CLINC150: training and prediction
throughput, accuracy and coverage at 1% risk.

Both models train on ``train`` + ``oos_train`` (out of scope as an explicit class). The
validation set (``val`` + ``oos_val``) is split in two stratified halves by a fixed seed: the
threshold is chosen on one half (risk at most 1%), coverage and risk are measured on the other,
as observed (3% out of scope) and reweighted to the held-out test split's 18% out of scope.
The baseline is TF-IDF (word unigrams, sklearn defaults) + LogisticRegression, confidence the
top class probability.

Run it with ``python bench/local_model.py [--quick]``; ``--quick`` keeps 30 intents.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from accord.agents._evaluation import (
    choose_threshold,
    expected_calibration_error,
    in_scope_accuracy,
    risk_coverage,
)
from accord.agents._local import OUT_OF_SCOPE, IntentModel, IntentPrediction

CLINC = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "clinc150"
TEST_OOS_SHARE = 1000 / 5500
MAX_RISK = 0.01
QUICK_INTENTS = 30

Predictor = Callable[[Sequence[str]], list[IntentPrediction]]


@dataclass(frozen=True)
class Result:
    name: str
    train_seconds: float
    predictions_per_second: float
    accuracy: float
    ece: float
    coverage: float
    risk: float
    projected_coverage: float
    projected_risk: float


def _load(quick: bool) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    data = json.loads((CLINC / "data_full_train_val.json").read_text())
    train, validation = data["train"] + data["oos_train"], data["val"] + data["oos_val"]
    if quick:
        kept = set(sorted({label for _, label in data["train"]})[:QUICK_INTENTS]) | {OUT_OF_SCOPE}
        train = [item for item in train if item[1] in kept]
        validation = [item for item in validation if item[1] in kept]
    return [(t, label) for t, label in train], [(t, label) for t, label in validation]


def _halves(labels: list[str]) -> tuple[list[int], list[int]]:
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    rng = random.Random(0)
    tune: list[int] = []
    report: list[int] = []
    for label in sorted(by_label):
        members = by_label[label]
        rng.shuffle(members)
        tune += members[: len(members) // 2]
        report += members[len(members) // 2 :]
    return tune, report


def _ours(texts: list[str], labels: list[str]) -> Predictor:
    return IntentModel.train(texts, labels, seed=0).predict


def _baseline(texts: list[str], labels: list[str]) -> Predictor:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectoriser = TfidfVectorizer()
    classifier = LogisticRegression(max_iter=1000)
    classifier.fit(vectoriser.fit_transform(texts), labels)
    classes = list(classifier.classes_)

    def predict(batch: Sequence[str]) -> list[IntentPrediction]:
        probabilities = classifier.predict_proba(vectoriser.transform(batch))
        predictions = []
        for row in probabilities:
            best = sorted(range(len(classes)), key=lambda i: -row[i])[:3]
            top = tuple((str(classes[i]), float(row[i])) for i in best)
            label, confidence = top[0]
            predictions.append(
                IntentPrediction(OUT_OF_SCOPE, 0.0, top)
                if label == OUT_OF_SCOPE
                else IntentPrediction(label, confidence, top)
            )
        return predictions

    return predict


def _measure(
    name: str,
    build: Callable[[list[str], list[str]], Predictor],
    train: list[tuple[str, str]],
    validation: list[tuple[str, str]],
) -> Result:
    started = time.perf_counter()
    predict = build([t for t, _ in train], [label for _, label in train])
    train_seconds = time.perf_counter() - started
    texts, labels = [t for t, _ in validation], [label for _, label in validation]
    started = time.perf_counter()
    predictions = predict(texts)
    per_second = len(texts) / (time.perf_counter() - started)
    tune, report = _halves(labels)

    def pick(rows: list[int]) -> tuple[list[IntentPrediction], list[str]]:
        return [predictions[i] for i in rows], [labels[i] for i in rows]

    tune_p, tune_l = pick(tune)
    report_p, report_l = pick(report)
    threshold = choose_threshold(tune_p, tune_l, max_risk=MAX_RISK)
    (held,) = risk_coverage(report_p, report_l, [threshold])
    projected_threshold = choose_threshold(
        tune_p, tune_l, max_risk=MAX_RISK, oos_share=TEST_OOS_SHARE
    )
    (projected,) = risk_coverage(
        report_p, report_l, [projected_threshold], oos_share=TEST_OOS_SHARE
    )
    return Result(
        name=name,
        train_seconds=train_seconds,
        predictions_per_second=per_second,
        accuracy=in_scope_accuracy(predictions, labels),
        ece=expected_calibration_error(predictions, labels),
        coverage=held.coverage,
        risk=held.risk,
        projected_coverage=projected.coverage,
        projected_risk=projected.risk,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help=f"keep {QUICK_INTENTS} intents only")
    options = parser.parse_args(argv)
    if not CLINC.is_dir():
        print(f"CLINC150 is not at {CLINC}; nothing to measure.", file=sys.stderr)
        return 2
    train, validation = _load(options.quick)
    results = [
        _measure("accord local", _ours, train, validation),
        _measure("baseline LR", _baseline, train, validation),
    ]
    table = Table(
        title=f"CLINC150 {'(quick, 30 intents) ' if options.quick else ''}"
        f"train {len(train)}, validation {len(validation)}; risk <= {MAX_RISK:.0%}, untuned half"
    )
    for column in (
        "model",
        "train s",
        "predict /s",
        "accuracy",
        "ECE",
        "coverage",
        "risk",
        "cov @18% oos",
        "risk @18% oos",
    ):
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in results:
        table.add_row(
            r.name,
            f"{r.train_seconds:.1f}",
            f"{r.predictions_per_second:,.0f}",
            f"{r.accuracy:.4f}",
            f"{r.ece:.4f}",
            f"{r.coverage:.3f}",
            f"{r.risk:.4f}",
            f"{r.projected_coverage:.3f}",
            f"{r.projected_risk:.4f}",
        )
    Console(width=140).print(table)
    ours, base = results
    headline = {
        "bench": "local_model",
        "quick": options.quick,
        "accuracy": round(ours.accuracy, 4),
        "baseline_accuracy": round(base.accuracy, 4),
        "coverage_at_1pct_risk": round(ours.coverage, 4),
        "risk": round(ours.risk, 4),
        "baseline_coverage_at_1pct_risk": round(base.coverage, 4),
        "baseline_risk": round(base.risk, 4),
        "projected_coverage_18pct_oos": round(ours.projected_coverage, 4),
        "baseline_projected_coverage_18pct_oos": round(base.projected_coverage, 4),
        "ece": round(ours.ece, 4),
        "baseline_ece": round(base.ece, 4),
        "train_seconds": round(ours.train_seconds, 2),
        "baseline_train_seconds": round(base.train_seconds, 2),
        "predictions_per_second": round(ours.predictions_per_second),
        "coverage_ratio": round(ours.coverage / base.coverage, 3) if base.coverage else None,
        "train_time_ratio": round(ours.train_seconds / base.train_seconds, 3),
        "predict_speed_ratio": round(ours.predictions_per_second / base.predictions_per_second, 3),
    }
    print(json.dumps(headline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
