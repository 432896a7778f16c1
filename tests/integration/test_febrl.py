"""Evidence: the record matcher on the FEBRL synthetic person data, weights estimated by EM.

No labels are used to fit anything: the model of each dataset is estimated without them from
that dataset's records, with the default comparisons, blocking and thresholds, which are the
ones the held-out parts (FEBRL dataset 3, the held-out fifth of dataset 4) are measured with.
Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from accord.identity import LinkageReport, febrl_reports

FEBRL = Path(__file__).parents[2].parent / "shared" / "datasets" / "febrl"


@pytest.fixture(scope="module")
def reports() -> dict[str, LinkageReport]:
    if not FEBRL.is_dir():
        pytest.skip(f"the FEBRL datasets are not at {FEBRL}")
    started = time.perf_counter()
    found = febrl_reports(FEBRL)
    elapsed = time.perf_counter() - started
    for report in found:
        print(report.to_json())
    print(f"all FEBRL reports in {elapsed:.1f} s")
    assert elapsed < 30, "the FEBRL evaluation must stay well under a minute on one core"
    return {report.task.split()[1]: report for report in found}


def test_two_source_linkage_dataset4(reports: dict[str, LinkageReport]) -> None:
    report = reports["dataset4"]
    assert report.true_pairs == 4_000
    assert report.pairs_completeness >= 0.995
    assert report.f1 >= 0.98


def test_deduplication_dataset2(reports: dict[str, LinkageReport]) -> None:
    report = reports["dataset2"]
    assert report.true_pairs == 1_934
    assert report.pairs_completeness >= 0.995
    assert report.f1 >= 0.95


def test_deduplication_dataset1(reports: dict[str, LinkageReport]) -> None:
    report = reports["dataset1"]
    assert report.true_pairs == 500
    assert report.pairs_completeness >= 0.995
    assert report.f1 >= 0.95


def test_candidate_pairs_stay_manageable(reports: dict[str, LinkageReport]) -> None:
    for report in reports.values():
        assert report.candidate_pairs <= 5 * report.records, report.task
        assert report.em_iterations >= 1
