from __future__ import annotations

import random
import threading


class FrozenClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, value: float) -> None:
        self._now = value


class SequentialIds:
    """Predictable ids (``run_000001``…) and seeded randomness.

    A non-zero ``seed`` also goes into the ids (``run_2_000001``), so that several instances
    sharing a database, like processes, never hand out the same id.
    """

    def __init__(self, seed: int = 0) -> None:
        self._counter = 0
        self._infix = f"{seed}_" if seed else ""
        self._lock = threading.Lock()
        self._random = random.Random(seed)

    def new_id(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return f"{prefix}_{self._infix}{self._counter:06d}"

    def random(self) -> float:
        return self._random.random()
