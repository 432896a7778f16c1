"""The gateway: the one path every capability invocation takes."""

from accord.gateway._gateway import Gateway

__all__ = ["Gateway"]
