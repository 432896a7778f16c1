"""The demo enterprise's systems. ``register(registry)`` adds their capabilities.

These run in-process as Python callables; each write honours its idempotency key, so a replayed
call returns the first result instead of acting twice.
"""

from accord.sandbox._retail import RetailSystems, register

__all__ = ["RetailSystems", "register"]
