"""Measuring the matcher on labelled data: the FEBRL synthetic datasets and their true pairs.

The decisions measured are the ones a resolver would make:

- *Deduplication*: the records arrive in their given order and each joins the cluster of its
  best-scoring linked candidate among the records before it (a pair classified ``link``), as a
  resolver links a new record to its best candidate's subject; a record with no link starts a
  cluster. Joins go strongest first through a union-find that refuses to grow a cluster past
  ``max_cluster_size``, so that a chain of links cannot swallow a crowd. Every pair of records
  in one cluster is a predicted link, as they share one subject.
- *Linkage of two sources*: each record of the second source is linked to its best-scoring
  linked candidate in the first. No one-to-one assignment is enforced: a subject may hold
  several records of a source, as it may in the resolver.

``possible`` pairs count as non-links for precision and recall and are reported on their own.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

import numpy as np

from accord.errors import InputError
from accord.identity._blocking import (
    DEFAULT_BLOCKING,
    Blocking,
    candidate_pairs,
    sample_non_candidates,
)
from accord.identity._comparison import DEFAULT_COMPARISONS, Comparison, comparison_vectors
from accord.identity._fellegi_sunter import SAMPLE_SIZE, MatchModel, fit
from accord.identity._normalise import IdentityRecord, normalise

__all__ = [
    "LinkageReport",
    "evaluate_deduplication",
    "evaluate_linkage",
    "febrl_reports",
    "load_febrl",
    "read_true_pairs",
]

MAX_CLUSTER_SIZE: Final = 50
"""The most records deduplication puts in one cluster (one person's records, all sources)."""


@dataclass(frozen=True, slots=True)
class LinkageReport:
    """How well the matcher found the true pairs of one dataset.

    Attributes:
        task: What was measured (``"febrl dataset2 (deduplication)"``).
        records: How many records (both sources together for a linkage).
        candidate_pairs: Pairs that blocking proposed.
        true_pairs: Pairs that are the same person.
        pairs_completeness: Share of true pairs among the candidates (blocking recall).
        links: Predicted links.
        possible_links: Pairs classified ``possible`` that are not links.
        true_positives: Links that are true pairs.
        false_positives: Links that are not.
        false_negatives: True pairs not linked.
        precision: ``tp / (tp + fp)``.
        recall: ``tp / (tp + fn)``.
        f1: Harmonic mean of precision and recall.
        em_iterations: EM iterations of the estimated model (0 when a model was given).
        seconds: Wall time of blocking, estimation, scoring and decisions.
    """

    task: str
    records: int
    candidate_pairs: int
    true_pairs: int
    pairs_completeness: float
    links: int
    possible_links: int
    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float
    recall: float
    f1: float
    em_iterations: int
    seconds: float

    def to_json(self) -> str:
        """The report as one JSON object."""
        return json.dumps(asdict(self), sort_keys=True)


def load_febrl(path: str | Path) -> list[IdentityRecord]:
    """Read a FEBRL CSV file (values may start with a space) into identity records.

    Each record's source is the file's stem and its id the ``rec_id`` column.

    Raises:
        InputError: The file cannot be read or has no ``rec_id`` column.
    """
    source = Path(path)
    try:
        with source.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, skipinitialspace=True))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"{source}: cannot read FEBRL records ({error})") from error
    records = []
    for line, row in enumerate(rows, start=2):
        values = {key.strip(): (value or "").strip() for key, value in row.items() if key}
        record_id = values.get("rec_id")
        if not record_id:
            raise InputError(
                f"{source}:{line}: the record has no rec_id",
                hint="a FEBRL file starts with a header whose first column is rec_id",
            )
        records.append(normalise(values, source=source.stem, record_id=record_id))
    return records


def read_true_pairs(path: str | Path) -> frozenset[tuple[str, str]]:
    """Read record id pairs (a header line, then two ids per line).

    Raises:
        InputError: The file cannot be read or a line does not hold two ids.
    """
    source = Path(path)
    try:
        with source.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle, skipinitialspace=True))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"{source}: cannot read true pairs ({error})") from error
    pairs = set()
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise InputError(f"{source}:{line}: expected two record ids, got {row!r}")
        pairs.add((row[0].strip(), row[1].strip()))
    return frozenset(pairs)


def evaluate_deduplication(
    records: Sequence[IdentityRecord],
    true_pairs: Collection[tuple[str, str]],
    *,
    model: MatchModel | None = None,
    comparisons: Sequence[Comparison] = DEFAULT_COMPARISONS,
    blocking: Blocking = DEFAULT_BLOCKING,
    max_cluster_size: int = MAX_CLUSTER_SIZE,
    task: str = "deduplication",
    seed: int = 0,
) -> LinkageReport:
    """Find the duplicates among ``records`` and measure them against ``true_pairs``.

    Args:
        records: The records, with unique ids.
        true_pairs: Unordered pairs of ids of the same person.
        model: The model to use; ``None`` estimates one by EM from ``records``.
        comparisons: The comparisons of an estimated model.
        blocking: How candidate pairs are found.
        max_cluster_size: No cluster grows past this many records.
        task: The report's task name.
        seed: Seed of EM's random sample.
    """
    started = time.perf_counter()
    pairs = candidate_pairs(records, blocking)
    model, iterations, weights, probabilities = _scores(
        model, comparisons, records, None, pairs, seed
    )
    best = _best_links(model, pairs, weights, probabilities)
    members = _clusters(len(records), best, max_size=max_cluster_size)
    ids = [record.record_id for record in records]
    links = {
        _unordered(ids[x], ids[y])
        for cluster in members
        for position, x in enumerate(cluster)
        for y in cluster[position + 1 :]
    }
    proposed = {_unordered(ids[i], ids[j]) for i, j in pairs}
    possible = {
        _unordered(ids[i], ids[j])
        for (i, j), p in zip(pairs, probabilities, strict=True)
        if model.decide(float(p)) == "possible"
    } - links
    truth = {_unordered(x, y) for x, y in true_pairs}
    return _report(task, len(records), proposed, truth, links, possible, iterations, started)


def evaluate_linkage(
    records_a: Sequence[IdentityRecord],
    records_b: Sequence[IdentityRecord],
    true_pairs: Collection[tuple[str, str]],
    *,
    model: MatchModel | None = None,
    comparisons: Sequence[Comparison] = DEFAULT_COMPARISONS,
    blocking: Blocking = DEFAULT_BLOCKING,
    task: str = "linkage",
    seed: int = 0,
) -> LinkageReport:
    """Link ``records_b`` to ``records_a`` and measure the links against ``true_pairs``.

    Args:
        records_a: The first source (the records already resolved).
        records_b: The second source; each is linked to at most one record of the first.
        true_pairs: ``(id in records_a, id in records_b)`` pairs of the same person.
        model: The model to use; ``None`` estimates one by EM from both sources.
        comparisons: The comparisons of an estimated model.
        blocking: How candidate pairs are found.
        task: The report's task name.
        seed: Seed of EM's random sample.
    """
    started = time.perf_counter()
    pairs = candidate_pairs(records_a, blocking, other=records_b)
    model, iterations, weights, probabilities = _scores(
        model, comparisons, records_a, records_b, pairs, seed
    )
    named = [(records_a[i].record_id, records_b[j].record_id) for i, j in pairs]
    links = {
        (records_a[i].record_id, records_b[j].record_id)
        for i, j in _best_links(model, pairs, weights, probabilities)
    }
    possible = {
        pair
        for pair, p in zip(named, probabilities, strict=True)
        if model.decide(float(p)) == "possible"
    } - links
    records = len(records_a) + len(records_b)
    return _report(task, records, set(named), set(true_pairs), links, possible, iterations, started)


def febrl_reports(directory: Path) -> list[LinkageReport]:
    """Measure the matcher, with weights estimated by EM, on FEBRL datasets 1, 2 and 4.

    ``directory`` holds ``dataset1.csv``, ``dataset2.csv``, ``dataset4a_shared.csv``,
    ``dataset4b_shared.csv`` and their ``*_true_matches.csv`` files.
    """
    reports = []
    for name in ("dataset1", "dataset2"):
        reports.append(
            evaluate_deduplication(
                load_febrl(directory / f"{name}.csv"),
                read_true_pairs(directory / f"{name}_true_matches.csv"),
                task=f"febrl {name} (deduplication)",
            )
        )
    reports.append(
        evaluate_linkage(
            load_febrl(directory / "dataset4a_shared.csv"),
            load_febrl(directory / "dataset4b_shared.csv"),
            read_true_pairs(directory / "dataset4_shared_true_matches.csv"),
            task="febrl dataset4 shared (linkage)",
        )
    )
    return reports


def _scores(
    model: MatchModel | None,
    comparisons: Sequence[Comparison],
    left: Sequence[IdentityRecord],
    right: Sequence[IdentityRecord] | None,
    pairs: Sequence[tuple[int, int]],
    seed: int,
) -> tuple[MatchModel, int, list[float], list[float]]:
    other = left if right is None else right
    used = comparisons if model is None else model.comparisons
    vectors = comparison_vectors(used, left, other, pairs)
    iterations = 0
    if model is None:
        sample, sample_weight = sample_non_candidates(
            len(left), None if right is None else len(right), pairs, size=SAMPLE_SIZE, seed=seed
        )
        model = fit(
            used,
            vectors,
            comparison_vectors(used, left, other, sample),
            sample_weight=sample_weight,
        )
        iterations = model.iterations
    weights = model.weights_of(vectors)
    odds = np.clip(weights + model.prior_weight, -1000.0, 1000.0)
    probabilities = 1.0 / (1.0 + np.exp2(-odds))
    return model, iterations, weights.tolist(), probabilities.tolist()


def _best_links(
    model: MatchModel,
    pairs: Sequence[tuple[int, int]],
    weights: Sequence[float],
    probabilities: Sequence[float],
) -> list[tuple[int, int]]:
    # The strongest link of each pair's second record (the later one, or the second source's).
    best: dict[int, tuple[float, tuple[int, int]]] = {}
    for pair, weight, probability in zip(pairs, weights, probabilities, strict=True):
        if model.decide(probability) != "link":
            continue
        later = pair[1]
        if later not in best or weight > best[later][0]:
            best[later] = (weight, pair)
    chosen = sorted(best.values(), key=lambda item: (-item[0], item[1]))
    return [pair for _, pair in chosen]


def _clusters(count: int, links: Sequence[tuple[int, int]], *, max_size: int) -> list[list[int]]:
    # Links come strongest first, so a cluster that is full has kept its surest members.
    parent = list(range(count))
    size = [1] * count

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    for i, j in links:
        a, b = root(i), root(j)
        if a != b and size[a] + size[b] <= max_size:
            parent[b] = a
            size[a] += size[b]
    members: dict[int, list[int]] = {}
    for index in range(count):
        members.setdefault(root(index), []).append(index)
    return list(members.values())


def _unordered(x: str, y: str) -> tuple[str, str]:
    return (x, y) if x <= y else (y, x)


def _report(
    task: str,
    records: int,
    proposed: set[tuple[str, str]],
    truth: set[tuple[str, str]],
    links: set[tuple[str, str]],
    possible: set[tuple[str, str]],
    iterations: int,
    started: float,
) -> LinkageReport:
    tp = len(links & truth)
    fp = len(links) - tp
    fn = len(truth) - tp
    precision = tp / len(links) if links else 0.0
    recall = tp / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return LinkageReport(
        task=task,
        records=records,
        candidate_pairs=len(proposed),
        true_pairs=len(truth),
        pairs_completeness=len(proposed & truth) / len(truth) if truth else 1.0,
        links=len(links),
        possible_links=len(possible),
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        precision=precision,
        recall=recall,
        f1=f1,
        em_iterations=iterations,
        seconds=time.perf_counter() - started,
    )
