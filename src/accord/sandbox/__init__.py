"""The demo enterprise's systems.

Two forms:

* in-process Python callables: ``register(registry)`` adds their capabilities; each write honours
  its idempotency key, so a replayed call returns the first result instead of acting twice.
* separate HTTP services (CRM, billing, orders, helpdesk, KYC, notifications, directory), each
  with its own SQLite database and OpenAPI document: :class:`SandboxEnterprise` runs them, and
  :func:`create_app` builds one as an ASGI app. See ``docs/sandbox.md``.
"""

from accord.sandbox._faults import FaultRule
from accord.sandbox._retail import RetailSystems, register
from accord.sandbox._server import SandboxEnterprise
from accord.sandbox._systems import SERVICES, create_app

__all__ = [
    "SERVICES",
    "FaultRule",
    "RetailSystems",
    "SandboxEnterprise",
    "create_app",
    "register",
]
