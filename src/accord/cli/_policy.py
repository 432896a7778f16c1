"""``accord policy``: deploy, test, explain and list Cedar policy bundles."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from accord.cli._common import console, errors, fail, handled, opened, tenant_of, when
from accord.errors import InputError
from accord.policy import (
    Explanation,
    PolicyBundle,
    PolicyDecision,
    PolicyDecisionPoint,
    PolicyRequest,
    entity_from,
    load_cases_file,
    run_cases,
)

app = typer.Typer(help="Deploy, test and explain Cedar policy bundles.", no_args_is_help=True)

Database = Annotated[
    str | None, typer.Option("--database", help="database URL (default: ACCORD_DATABASE_URL)")
]
PoliciesOption = Annotated[
    Path | None,
    typer.Option("--policies", help="a Cedar policy file to use instead of the deployed bundle"),
]
SchemaOption = Annotated[
    Path | None, typer.Option("--schema", help="the Cedar schema for --policies")
]


@app.command("deploy")
def deploy_command(
    policies_file: Annotated[Path, typer.Argument(help="Cedar policies", show_default=False)],
    schema: Annotated[Path, typer.Option("--schema", help="Cedar schema the policies must match")],
    actor: Annotated[str, typer.Option(help="who deploys, as the bundle records it")] = "cli",
    database: Database = None,
) -> None:
    """Validate a policy bundle against its schema and make it the tenant's active bundle.

    Content identical to the active bundle keeps its version.
    """
    policies_text, schema_text = _read(policies_file), _read(schema)
    with opened(database) as accord, handled():
        tenant = tenant_of(accord)
        before = accord.policies.active(tenant)
        bundle = accord.policies.deploy(
            tenant, policies_text, schema_text, source_name=str(policies_file), actor=actor
        )
        state = (
            "unchanged" if before is not None and before.version == bundle.version else ("deployed")
        )
        count = len(bundle.compiled_policies)
        console.print(
            f"{state} policy bundle [bold]v{bundle.version}[/bold] ({bundle.digest[:19]}), "
            f"{count} polic{'y' if count == 1 else 'ies'}, for tenant {tenant}"
        )


@app.command("test")
def test_command(
    cases_file: Annotated[Path, typer.Argument(help="YAML test cases", show_default=False)],
    policies: PoliciesOption = None,
    schema: SchemaOption = None,
    database: Database = None,
) -> None:
    """Check a bundle against test cases: the deployed one, or --policies with --schema.

    Exit code 1 when a case fails.
    """
    with handled():
        cases = load_cases_file(cases_file)
    if policies is not None or schema is not None:
        bundle = _compiled_from_files(policies, schema)
        results = run_cases(bundle, cases)
        origin = str(policies)
    else:
        with opened(database) as accord, handled():
            bundle = accord.policies.bundle(tenant_of(accord))
            results = run_cases(bundle, cases, pdp=accord.pdp)
        origin = f"bundle v{bundle.version}"
    table = Table("case", "expected", "got", "determining", "result")
    for result in results:
        got = _verdict(result.decision)
        table.add_row(
            result.case.name,
            result.case.decision,
            got,
            ", ".join(result.decision.determining) or "-",
            "[green]pass[/green]" if result.passed else "[red]FAIL[/red]",
        )
    console.print(table)
    failed = [r for r in results if not r.passed]
    for result in failed:
        errors.print(f"{result.case.name}:", style="red", markup=False)
        for failure in result.failures:
            errors.print(f"  {failure}", markup=False)
    console.print(f"{len(results) - len(failed)} passed, {len(failed)} failed against {origin}")
    if failed:
        raise typer.Exit(1)


@app.command("explain")
def explain_command(
    principal: Annotated[str, typer.Option(help="who acts, as Type::id (Service::journey/x)")],
    action: Annotated[str, typer.Option(help="the capability, e.g. payments.refund")],
    resource: Annotated[str, typer.Option(help="what it acts on, as Type::id (Subject::cus_1)")],
    context: Annotated[
        str | None, typer.Option(help="context as a JSON object, e.g. '{\"amount\": 42.5}'")
    ] = None,
    principal_attrs: Annotated[
        str | None, typer.Option(help="principal attributes as a JSON object")
    ] = None,
    resource_attrs: Annotated[
        str | None, typer.Option(help="resource attributes as a JSON object")
    ] = None,
    policies: PoliciesOption = None,
    schema: SchemaOption = None,
    database: Database = None,
) -> None:
    """Decide one request and show why: the determining policies, obligations and every
    policy's match. Numbers with a decimal point in the JSON are Cedar decimals."""
    with handled():
        request = PolicyRequest(
            entity_from(principal, _json_object(principal_attrs, "--principal-attrs")),
            action,
            entity_from(resource, _json_object(resource_attrs, "--resource-attrs")),
            _json_object(context, "--context"),
        )
    if policies is not None or schema is not None:
        bundle: PolicyBundle | None = _compiled_from_files(policies, schema)
        explanation = PolicyDecisionPoint().explain(bundle, request)
    else:
        with opened(database) as accord, handled():
            bundle = accord.policies.active(tenant_of(accord))
            explanation = accord.pdp.explain(bundle, request)
    _print_explanation(explanation)


@app.command("list")
def list_command(database: Database = None) -> None:
    """The tenant's policy bundle versions, newest (active) first."""
    with opened(database) as accord, handled():
        versions = accord.policies.versions(tenant_of(accord))
        table = Table("version", "digest", "deployed", "by", "from")
        for index, version in enumerate(versions):
            table.add_row(
                f"{version.version}{' (active)' if index == 0 else ''}",
                version.digest[7:19],
                when(version.deployed_at),
                version.deployed_by,
                version.source_name,
            )
        console.print(table if versions else "no policy bundle deployed yet")


def _print_explanation(explanation: Explanation) -> None:
    decision = explanation.decision
    version = "no bundle" if decision.bundle_version is None else f"v{decision.bundle_version}"
    style = "green" if decision.allowed else "red"
    console.print(
        f"[{style}][bold]{_verdict(decision).upper()}[/bold][/{style}] "
        f"({decision.reason}) under policy bundle {version}"
    )
    console.print(f"determining: {', '.join(decision.determining) or '-'}")
    obligations = [f"{o.kind}: {o.value} ({o.policy})" for o in decision.obligations]
    console.print(f"obligations: {'; '.join(obligations) or '-'}", markup=False)
    for message in decision.errors:
        errors.print(f"error: {message}", style="red", markup=False)
    if not explanation.policies:
        return
    table = Table("policy", "effect", "line", "matched", "decided", "annotations")
    for trace in explanation.policies:
        matched = {True: "yes", False: "no", None: "error" if trace.error else "-"}[trace.matched]
        annotations = ", ".join(f"@{k}({v!r})" for k, v in trace.annotations.items() if k != "id")
        table.add_row(
            trace.id,
            trace.effect,
            "-" if trace.line is None else str(trace.line),
            matched,
            "[bold]yes[/bold]" if trace.determining else "",
            annotations,
        )
    console.print(table)
    for trace in explanation.policies:
        if trace.determining or trace.error:
            heading = "failed" if trace.error else "decided"
            console.print(f"\n{heading}: {trace.id}", markup=False)
            if trace.error:
                errors.print(f"  {trace.error}", markup=False)
            for line in trace.source.splitlines():
                console.print(f"  {line}", markup=False, highlight=False)


def _verdict(decision: PolicyDecision) -> str:
    return "allow" if decision.allowed else "deny"


def _compiled_from_files(policies: Path | None, schema: Path | None) -> PolicyBundle:
    if policies is None or schema is None:
        fail(
            "--policies and --schema go together",
            hint="give both files, or neither to use the deployed bundle",
        )
    policies_text, schema_text = _read(policies), _read(schema)
    with handled():
        return PolicyBundle.compile(policies_text, schema_text, source_name=str(policies))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", hint="check the path")


def _json_object(text: str | None, option: str) -> dict[str, Any]:
    """A JSON object option; numbers with a decimal point become decimals, as in case files."""
    if text is None:
        return {}
    try:
        value = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{option} is not valid JSON: {exc.msg} at column {exc.colno}",
            hint=f"""quote it for the shell, e.g. {option} '{{"amount": 42.5}}'""",
        ) from exc
    if not isinstance(value, dict):
        raise InputError(f"{option} must be a JSON object, got {type(value).__name__}")
    return value
