"""Test doubles Accord ships for its own tests and for yours."""

from accord.testing._clock import FrozenClock, SequentialIds

__all__ = ["FrozenClock", "SequentialIds"]
