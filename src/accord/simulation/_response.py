"""How the simulation's customers answer a retention offer: the true effect an experiment on
offers is there to find.

A customer who wants to leave accepts an offer of ``p`` percent off with probability

    acceptance(p) = 1 / (1 + exp(-slope * (p - midpoint)))

By default ``midpoint`` is 20 (half of them stay for 20% off) and ``slope`` 0.2 per point: about
12% accept 10% off, 27% accept 15%, 50% accept 20%, 73% accept 25% and 88% accept 30%. Each
customer carries their own draw in [0, 1) from the mix's seeded generator and accepts when the
draw is below ``acceptance(p)``. One seed therefore gives the same answers every time, and the
same customer offered another percent decides with the same draw: a more generous offer keeps
everyone a smaller one keeps, and some more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetentionResponse:
    """The share of customers who accept a retention discount, rising with its percent.

    Attributes:
        midpoint: the percent half of the customers accept.
        slope: how steeply acceptance rises around the midpoint, per percentage point.

    Raises:
        ValueError: ``slope`` is not above 0 (acceptance would not rise with the offer).
    """

    midpoint: float = 20.0
    slope: float = 0.2

    def __post_init__(self) -> None:
        if not self.slope > 0 or not math.isfinite(self.slope + self.midpoint):
            raise ValueError(
                f"a retention response needs a finite midpoint and a slope above 0, not "
                f"midpoint {self.midpoint!r} and slope {self.slope!r}"
            )

    def acceptance(self, percent: float) -> float:
        """The probability that a customer accepts ``percent`` off."""
        z = self.slope * (percent - self.midpoint)
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        return math.exp(z) / (1.0 + math.exp(z))

    def accepts(self, percent: float, *, draw: float) -> bool:
        """Whether the customer whose own draw is ``draw`` accepts ``percent`` off."""
        return draw < self.acceptance(percent)
