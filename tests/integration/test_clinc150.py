"""Evidence: the local intent model on CLINC150 (and Banking77), with honest, untuned figures.

The model trains on ``train`` + ``oos_train`` only. ``val`` + ``oos_val`` is split in two halves
by a fixed seed, stratified by label: the auto-execution threshold is chosen on one half
(risk at most 1%) and coverage and risk are reported on the other. The held-out CLINC150 test
split has 18% out-of-scope requests where validation has 3%, so the figures are also projected
onto that mix by reweighting out-of-scope items. Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import csv
import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from accord.agents._evaluation import (
    choose_threshold,
    evaluate,
    expected_calibration_error,
    in_scope_accuracy,
    risk_coverage,
)
from accord.agents._local import IntentModel, IntentPrediction

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
CLINC = DATASETS / "clinc150"
BANKING = DATASETS / "banking77"
TEST_OOS_SHARE = 1000 / 5500
MAX_RISK = 0.01
SPLIT_SEED = 0
PROJECTED_COVERAGE_FLOOR = 0.539
PROJECTED_RISK_CEILING = 0.0185
T = TypeVar("T")

pytestmark = pytest.mark.skipif(
    not (CLINC / "data_full_train_val.json").is_file(),
    reason=f"CLINC150 is not at {CLINC} (the shared datasets directory is absent)",
)


@dataclass(frozen=True)
class Evaluated:
    model: IntentModel
    train_seconds: float
    predictions: list[IntentPrediction]
    labels: list[str]


def _halves(labels: list[str], seed: int) -> tuple[list[int], list[int]]:
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    rng = random.Random(seed)
    tune: list[int] = []
    report: list[int] = []
    for label in sorted(by_label):
        members = by_label[label]
        rng.shuffle(members)
        tune += members[: len(members) // 2]
        report += members[len(members) // 2 :]
    return sorted(tune), sorted(report)


def _pick(items: list[T], rows: list[int]) -> list[T]:
    return [items[i] for i in rows]


@pytest.fixture(scope="module")
def clinc() -> Evaluated:
    data = json.loads((CLINC / "data_full_train_val.json").read_text())
    train = data["train"] + data["oos_train"]
    validation = data["val"] + data["oos_val"]
    started = time.perf_counter()
    model = IntentModel.train(
        [t for t, _ in train],
        [label for _, label in train],
        seed=0,
        source="CLINC150 data_full.json train + oos_train",
        attribution="Larson et al., EMNLP-IJCNLP 2019 (CC BY 3.0)",
    )
    seconds = time.perf_counter() - started
    predictions = model.predict([t for t, _ in validation])
    return Evaluated(model, seconds, predictions, [label for _, label in validation])


def test_clinc150_coverage_at_one_percent_risk_on_the_untuned_half(clinc: Evaluated) -> None:
    tune, report = _halves(clinc.labels, SPLIT_SEED)
    threshold = choose_threshold(
        _pick(clinc.predictions, tune), _pick(clinc.labels, tune), max_risk=MAX_RISK
    )
    (tuned,) = risk_coverage(_pick(clinc.predictions, tune), _pick(clinc.labels, tune), [threshold])
    (held,) = risk_coverage(
        _pick(clinc.predictions, report), _pick(clinc.labels, report), [threshold]
    )
    accuracy = in_scope_accuracy(clinc.predictions, clinc.labels)
    ece = expected_calibration_error(clinc.predictions, clinc.labels)
    summary = evaluate(
        _pick(clinc.predictions, report),
        _pick(clinc.labels, report),
        threshold=threshold,
        corpus="CLINC150 val+oos_val, untuned half",
        notes={"train_seconds": round(clinc.train_seconds, 1), "model_sha256": clinc.model.digest},
    )
    print(
        f"\nCLINC150: trained in {clinc.train_seconds:.1f}s; "
        f"in-scope accuracy on val {accuracy:.4f}; "
        f"ECE on val+oos_val {ece:.4f}\n"
        f"  threshold {threshold:.4f} chosen on the tuning half "
        f"(coverage {tuned.coverage:.3f}, risk {tuned.risk:.4f})\n"
        f"  untuned half: coverage {held.coverage:.3f}, risk {held.risk:.4f} "
        f"({held.wrong} wrong of {held.auto_executed} auto-executed)\n  {summary.to_json()}"
    )
    assert accuracy >= 0.90
    assert ece <= 0.05
    assert held.risk <= MAX_RISK
    assert held.coverage >= 0.65


def test_clinc150_projected_onto_the_test_splits_out_of_scope_share(clinc: Evaluated) -> None:
    tune, report = _halves(clinc.labels, SPLIT_SEED)
    tune_p, tune_l = _pick(clinc.predictions, tune), _pick(clinc.labels, tune)
    report_p, report_l = _pick(clinc.predictions, report), _pick(clinc.labels, report)
    weighted = choose_threshold(tune_p, tune_l, max_risk=MAX_RISK, oos_share=TEST_OOS_SHARE)
    plain = choose_threshold(tune_p, tune_l, max_risk=MAX_RISK)
    (with_weighted,) = risk_coverage(report_p, report_l, [weighted], oos_share=TEST_OOS_SHARE)
    (with_plain,) = risk_coverage(report_p, report_l, [plain], oos_share=TEST_OOS_SHARE)
    oos = [p for p, t in zip(clinc.predictions, clinc.labels, strict=True) if t == "oos"]
    recall = sum(p.label == "oos" for p in oos) / len(oos)
    print(
        f"\nCLINC150 projected to {TEST_OOS_SHARE:.1%} out of scope (reweighted untuned half); "
        f"OOS recall on val {recall:.2f}\n"
        f"  threshold chosen reweighted ({weighted:.4f}): coverage {with_weighted.coverage:.3f}, "
        f"risk {with_weighted.risk:.4f}\n"
        f"  threshold chosen unweighted ({plain:.4f}): coverage {with_plain.coverage:.3f}, "
        f"risk {with_plain.risk:.4f}"
    )
    assert with_weighted.coverage > 0.0
    assert with_weighted.risk <= 0.05
    # The goal is 65% coverage at 1% risk on this mix; the model does not reach it (the half's
    # 50 out-of-scope items weigh 6.7 each, so one leak is 0.4% risk). Hold it to no worse than
    # the margin-only Platt calibration it replaced: coverage 0.539 at risk 0.0185.
    assert with_weighted.coverage >= PROJECTED_COVERAGE_FLOOR
    assert with_weighted.risk <= PROJECTED_RISK_CEILING


def test_clinc150_confidence_is_calibrated(clinc: Evaluated) -> None:
    bins: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    for p, t in zip(clinc.predictions, clinc.labels, strict=True):
        if p.in_scope:
            bins[min(int(p.confidence * 10), 9)].append((p.confidence, p.label == t))
    lines = []
    for b in sorted(bins):
        members = bins[b]
        mean = sum(c for c, _ in members) / len(members)
        right = sum(ok for _, ok in members) / len(members)
        lines.append(
            f"  [{b / 10:.1f}, {(b + 1) / 10:.1f}): n={len(members):5d} "
            f"conf={mean:.3f} right={right:.3f}"
        )
        if len(members) >= 200:
            assert abs(mean - right) <= 0.05
    print("\nCLINC150 reliability on val+oos_val:\n" + "\n".join(lines))
    assert expected_calibration_error(clinc.predictions, clinc.labels) <= 0.05


@pytest.mark.skipif(not (BANKING / "train.csv").is_file(), reason=f"Banking77 is not at {BANKING}")
def test_banking77_reporting_only() -> None:
    with (BANKING / "train.csv").open(newline="", encoding="utf-8") as handle:
        rows = [(r["text"], r["category"]) for r in csv.DictReader(handle)]
    labels = [label for _, label in rows]
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    rng = random.Random(SPLIT_SEED)
    fit: list[int] = []
    held: list[int] = []
    for label in sorted(by_label):
        members = by_label[label]
        rng.shuffle(members)
        cut = len(members) // 5
        held += members[:cut]
        fit += members[cut:]
    started = time.perf_counter()
    model = IntentModel.train([rows[i][0] for i in fit], [labels[i] for i in fit], seed=0)
    seconds = time.perf_counter() - started
    held_labels = [labels[i] for i in held]
    predictions = model.predict([rows[i][0] for i in held])
    tune, report = _halves(held_labels, SPLIT_SEED)
    threshold = choose_threshold(
        _pick(predictions, tune), _pick(held_labels, tune), max_risk=MAX_RISK
    )
    (row,) = risk_coverage(_pick(predictions, report), _pick(held_labels, report), [threshold])
    accuracy = in_scope_accuracy(predictions, held_labels)
    ece = expected_calibration_error(predictions, held_labels)
    print(
        f"\nBanking77 (80/20 split of train.csv, no out-of-scope class): "
        f"trained in {seconds:.1f}s; "
        f"accuracy {accuracy:.4f}; ECE {ece:.4f}; at threshold {threshold:.4f} chosen on one half "
        f"of the 20%: coverage {row.coverage:.3f}, risk {row.risk:.4f} on the other"
    )
    assert accuracy >= 0.80
