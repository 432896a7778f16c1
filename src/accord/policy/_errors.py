"""The policy package's errors; both are the caller's to fix, so both are ``InputError``."""

from __future__ import annotations

from accord.errors import ErrorCode, InputError


class PolicyInvalid(InputError):
    """A policy bundle failed to parse or validate; nothing was deployed.

    ``diagnostics`` holds one line per problem, each naming the policy (its ``@id``, Cedar's
    positional id and the line it starts on) so the operator can go straight to it.
    """

    code = ErrorCode.INVALID_INPUT

    def __init__(self, diagnostics: list[str], *, source_name: str = "") -> None:
        count = len(diagnostics)
        where = f"{source_name}: " if source_name else ""
        lines = "\n".join(f"  {d}" for d in diagnostics)
        super().__init__(
            f"{where}policy bundle has {count} problem{'s' if count != 1 else ''}:\n{lines}",
            hint="fix the policies or the schema and deploy again; nothing was deployed",
        )
        self.diagnostics = diagnostics
        self.source_name = source_name


class PolicyBundleNotFound(InputError):
    """The tenant has no bundle, or not the version asked for."""

    code = ErrorCode.INVALID_INPUT
