"""The removal effect of each decision point in a first-order Markov chain over the paths.

Every path is a walk ``start → p1 → p2 → … → success | failure`` over decision points
(consecutive repeats of a point count once). Counting the moves gives a chain whose transient
states are ``start`` and the points, and whose absorbing states are success and failure. Its
probability of reaching success from ``start`` is the journey's success rate as the chain sees
it. Removing a point sends every move into it to failure instead; the point's removal effect is
the share of success lost, ``1 - P(success without it) / P(success)``, between 0 and 1. Shares
of credit are the removal effects normalised to sum to 100%.

The chain is first-order: where a run goes next depends only on the point it is at, not on
how it got there. A point every successful path passes has removal effect 1, whatever was
decided there: the effect measures how much success flows through a point, not whether the
value taken there mattered (that is what the estimates per value are for).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

__all__ = ["removal_effects"]

K = TypeVar("K", bound=Hashable)
Floats = npt.NDArray[np.float64]


def removal_effects(
    walks: Sequence[tuple[Sequence[K], bool]],
) -> tuple[float, dict[K, float]]:
    """The chain's success probability, and each point's removal effect.

    Args:
        walks: per run, the points it passed in order, and whether it succeeded.
    """
    states: dict[K, int] = {}
    for points, _ in walks:
        for point in points:
            states.setdefault(point, len(states) + 1)
    size = len(states) + 1  # 0 is start
    moves = np.zeros((size, size))
    to_success = np.zeros(size)
    to_failure = np.zeros(size)
    for points, succeeded in walks:
        here = 0
        for point in points:
            there = states[point]
            if there != here:
                moves[here, there] += 1
                here = there
        if succeeded:
            to_success[here] += 1
        else:
            to_failure[here] += 1
    totals = moves.sum(axis=1) + to_success + to_failure
    totals[totals == 0] = 1.0
    q = moves / totals[:, None]
    r = to_success / totals
    base = _absorbed(q, r)
    effects: dict[K, float] = {}
    for point, index in states.items():
        removed = q.copy()
        removed[:, index] = 0.0
        removed[index, :] = 0.0
        kept_r = r.copy()
        kept_r[index] = 0.0
        without = _absorbed(removed, kept_r)
        effects[point] = 0.0 if base <= 0 else min(1.0, max(0.0, 1.0 - without / base))
    return base, effects


def _absorbed(q: Floats, r: Floats) -> float:
    """The probability of absorption in success from ``start`` (state 0): every state reaches
    an absorbing one (each walk ends in one), so ``I - Q`` is invertible."""
    solved = np.linalg.solve(np.eye(len(q)) - q, r)
    return float(np.clip(solved[0], 0.0, 1.0))
