"""``accord identity``, ``accord context`` and ``accord retention``: who is who, what is known
about them through a purpose, and how long it is kept."""

from __future__ import annotations

import csv
import getpass
import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from accord.cli._common import (
    as_json,
    console,
    drive_if_embedded,
    fail,
    handled,
    opened,
    tenant_of,
    when,
)
from accord.core import parse_duration
from accord.errors import InputError
from accord.identity import (
    IdentityRecord,
    LinkageReport,
    RetentionRule,
    SourceRecord,
    evaluate_deduplication,
    evaluate_linkage,
    load_febrl,
    read_true_pairs,
)
from accord.storage import identity as stored_identity

app = typer.Typer(
    help="Identity resolution: source records to canonical subjects.", no_args_is_help=True
)
context_app = typer.Typer(help="The context store, read through a purpose.", no_args_is_help=True)
retention_app = typer.Typer(help="How long each data category is kept.", no_args_is_help=True)

Database = Annotated[
    str | None, typer.Option("--database", help="database URL (default: ACCORD_DATABASE_URL)")
]
Json = Annotated[bool, typer.Option("--json", help="print JSON")]
By = Annotated[str | None, typer.Option("--by", help="who acts (default: your login name)")]
Reason = Annotated[str, typer.Option("--reason", help="why, for the ledger")]

_FEBRL_ID = re.compile(r"^rec-(\d+)-")


@app.command("resolve")
def resolve_command(
    file: Annotated[Path, typer.Argument(help="JSON Lines (one record per line) or CSV")],
    source: Annotated[
        str | None, typer.Option("--source", help="the system the records come from")
    ] = None,
    id_field: Annotated[str, typer.Option("--id-field", help="the field holding the id")] = "id",
    region: Annotated[str | None, typer.Option("--region", help="the records' region")] = None,
    purpose: Annotated[
        str, typer.Option("--purpose", help="why the records' fields are kept as context")
    ] = "dpv:CustomerRelationshipManagement",
    json_output: Json = False,
    database: Database = None,
) -> None:
    """Resolve a file of source records to subjects.

    A JSON Lines record is an object with ``source`` (or --source), the id (--id-field,
    default ``id``; or ``record_id``), an optional ``region`` and the fields, at the top level
    or under ``fields``. A CSV file needs --source; its header names the fields.
    """
    records = _read_records(file, source=source, id_field=id_field, region=region)
    with opened(database) as accord, handled():
        report = accord.resolve_identities(records, purpose=purpose)
        drive_if_embedded(accord, lambda: None, wait=False)
    counts = report.counts()
    if json_output:
        console.print_json(
            as_json(
                {
                    "model_version": report.model_version,
                    "counts": counts,
                    "resolutions": list(report.resolutions),
                }
            )
        )
        return
    console.print(
        f"resolved {len(report.resolutions)} record(s) with match model "
        f"v{report.model_version}: "
        + ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    )
    possible = [r for r in report.resolutions if r.outcome == "possible"]
    if possible:
        console.print(
            f"{len(possible)} possible link(s) wait in the review inbox (queue identity): "
            "accord review list --queue identity"
        )


@app.command("sync")
def sync_command(
    capability: Annotated[str, typer.Argument(help="the read capability, e.g. crm.get_customer")],
    source: Annotated[str, typer.Option("--source", help="the system's name, e.g. crm")],
    param: Annotated[str, typer.Option("--param", help="the input field each id fills")],
    ids: Annotated[str | None, typer.Option("--ids", help="comma-separated ids to read")] = None,
    ids_file: Annotated[
        Path | None, typer.Option("--ids-file", help="a file with one id per line")
    ] = None,
    id_field: Annotated[
        str | None, typer.Option("--id-field", help="the answer's id field (default: --param)")
    ] = None,
    region_field: Annotated[
        str | None, typer.Option("--region-field", help="the answer's region field")
    ] = None,
    purpose: Annotated[
        str, typer.Option("--purpose", help="why the records are read")
    ] = "dpv:CustomerRelationshipManagement",
    principal: Annotated[
        str, typer.Option("--as", help="the agent name reading")
    ] = "identity-sync",
    json_output: Json = False,
    database: Database = None,
) -> None:
    """Read records from a system through the gateway, one call per id, and resolve them.

    The calls are about no subject yet, so the purpose needs a configured lawful basis (not
    consent) covering what the capability returns: accord consent basis PURPOSE --basis ...
    """
    wanted = [i.strip() for i in (ids or "").split(",") if i.strip()]
    if ids_file is not None:
        if not ids_file.is_file():
            fail(f"{ids_file} is not a file")
        wanted += [line.strip() for line in ids_file.read_text().splitlines() if line.strip()]
    if not wanted:
        fail("no ids to read", hint="--ids cus_00001,cus_00002 or --ids-file FILE")
    with opened(database) as accord, handled():
        report = accord.sync_identities(
            capability,
            [{param: i} for i in wanted],
            source=source,
            id_field=id_field or param,
            region_field=region_field,
            purpose=purpose,
            principal=principal,
        )
        drive_if_embedded(accord, lambda: None, wait=False)
    if json_output:
        console.print_json(
            as_json({"counts": report.resolved.counts(), "problems": list(report.problems)})
        )
    else:
        counts = report.resolved.counts()
        console.print(
            f"read {len(report.resolved.resolutions)} of {len(wanted)} record(s) from {source}: "
            + (", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "none resolved")
        )
        for problem in report.problems:
            console.print(
                f"[red]{problem.request}[/red]: {problem.reason or problem.status}: "
                f"{escape(problem.message)}"
            )
    if report.problems:
        raise typer.Exit(1)


@app.command("show")
def show_command(
    subject: Annotated[str, typer.Argument(help="a subject id")],
    json_output: Json = False,
    database: Database = None,
) -> None:
    """A subject's source records (their fields as normalised), merges and possible links."""
    with opened(database) as accord, handled():
        view = accord.identity.show(tenant_of(accord), subject)
    if json_output:
        console.print_json(as_json(view))
        return
    row = view.subject
    followed = f" (you asked for {subject}, merged into it)" if row.subject_id != subject else ""
    console.print(
        f"subject {row.subject_id}{followed}: {row.status}, region {row.region or '-'}, "
        f"since {when(row.created_at)}"
    )
    table = Table("source", "record", "link", "probability", "fields", title="records")
    for record in view.records:
        table.add_row(
            record.source,
            escape(record.record_id),
            record.link,
            "-" if record.probability is None else f"{record.probability:.3f}",
            escape(", ".join(sorted(record.fields))),
        )
    console.print(table)
    for merge in view.merges:
        undone = f", undone by {merge.undone_by}" if merge.undone_at else ""
        console.print(
            f"merge {merge.merge_id}: {merge.from_subject} into {merge.into_subject} by "
            f"{merge.merged_by} ({escape(merge.reason)}){undone}"
        )
    for candidate in view.candidates:
        console.print(
            f"possible link {candidate.candidate_id}: {candidate.subject_id} ~ "
            f"{candidate.other_subject_id}, p={candidate.probability:.3f}, {candidate.status}"
        )


@app.command("candidates")
def candidates_command(
    status: Annotated[str, typer.Option("--status", help="open, merged, kept_apart")] = "open",
    json_output: Json = False,
    database: Database = None,
) -> None:
    """Possible links: pairs of subjects a person should merge or keep apart."""
    statuses: dict[str, stored_identity.CandidateStatus] = {
        "open": "open",
        "merged": "merged",
        "kept_apart": "kept_apart",
        "stale": "stale",
    }
    if status not in statuses:
        fail(f"unknown status {status!r}", hint="use open, merged, kept_apart or stale")
    with opened(database) as accord, handled(), accord.db.read() as connection:
        found = stored_identity.list_candidates(
            connection, tenant_of(accord), status=statuses[status]
        )
    if json_output:
        console.print_json(as_json(found))
        return
    if not found:
        console.print(f"no {status} possible links")
        return
    table = Table("candidate", "subject", "other", "probability", "review run", "evidence")
    for c in found:
        agree = [f for f, w in c.evidence.get("weights", {}).items() if w > 0]
        table.add_row(
            c.candidate_id,
            c.subject_id,
            c.other_subject_id,
            f"{c.probability:.3f}",
            c.run_id or "-",
            "agree: " + ", ".join(sorted(agree)) if agree else "-",
        )
    console.print(table)


@app.command("merge")
def merge_command(
    keep: Annotated[str, typer.Argument(help="the subject that stays")],
    other: Annotated[str, typer.Argument(help="the subject merged into it")],
    reason: Reason,
    by: By = None,
    database: Database = None,
) -> None:
    """Merge two subjects (reversible: accord identity split KEEP --merge MERGE_ID)."""
    with opened(database) as accord, handled():
        merge = accord.identity.merge(
            tenant_of(accord), keep, other, by=by or getpass.getuser(), reason=reason
        )
    console.print(
        f"merged {other} into {keep} ({len(merge.records)} record(s), {len(merge.items)} "
        f"context item(s)); merge {merge.merge_id}"
    )


@app.command("split")
def split_command(
    subject: Annotated[str, typer.Argument(help="the subject to split")],
    reason: Reason,
    merge: Annotated[str | None, typer.Option("--merge", help="undo this merge")] = None,
    record: Annotated[
        list[str] | None, typer.Option("--record", help="SOURCE/ID of a record to split off")
    ] = None,
    by: By = None,
    database: Database = None,
) -> None:
    """Undo a merge, or split chosen records off to a new subject."""
    records: list[tuple[str, str]] = []
    for text in record or []:
        source, slash, record_id = text.partition("/")
        if not slash or not source or not record_id:
            fail(f"--record {text!r} is not SOURCE/ID", hint="e.g. --record crm/cus_00042")
        records.append((source, record_id))
    with opened(database) as accord, handled():
        target = accord.identity.split(
            tenant_of(accord),
            subject,
            by=by or getpass.getuser(),
            reason=reason,
            merge_id=merge,
            records=records,
        )
    console.print(f"split {subject}: the records are now subject {target}, kept apart")


@app.command("train")
def train_command(by: By = None, database: Database = None) -> None:
    """Estimate the match weights by EM from every stored record (a new model version)."""
    with opened(database) as accord, handled():
        version, model = accord.identity.train(tenant_of(accord), by=by or getpass.getuser())
    console.print(
        f"match model v{version}: estimated in {model.iterations} EM iteration(s), prior "
        f"{model.prior:.6f}, link at p >= {model.link_threshold}, review at p >= "
        f"{model.review_threshold}"
    )


@app.command("eval")
def eval_command(
    data: Annotated[
        Path, typer.Option("--data", help="a FEBRL directory (dataset1.csv, dataset2.csv…)")
    ] = Path("../shared/datasets/febrl"),
    json_output: Json = False,
) -> None:
    """Precision, recall and F1 on the FEBRL data sets in a directory.

    Deduplication on every ``datasetN.csv``; two-source linkage on every pair
    ``datasetNa*.csv`` / ``datasetNb*.csv``. True pairs come from ``*_true_matches.csv`` when
    present, else from the entity number in FEBRL's record ids. Weights are estimated by EM
    on each data set's own records; no label is used but to score.
    """
    if not data.is_dir():
        fail(f"{data} is not a directory", hint="--data DIR, e.g. ../shared/datasets/febrl")
    tasks = _febrl_tasks(data)
    if not tasks:
        fail(f"{data} holds no FEBRL data set", hint="expected dataset1.csv, dataset4a*.csv…")
    reports: list[LinkageReport] = []
    with handled():
        for name, files in tasks:
            if len(files) == 1:
                records = load_febrl(files[0])
                truth = _truth(data, name, [records])
                reports.append(
                    evaluate_deduplication(records, truth, task=f"febrl {name} (deduplication)")
                )
            else:
                left, right = load_febrl(files[0]), load_febrl(files[1])
                truth = _truth(data, name, [left, right])
                reports.append(evaluate_linkage(left, right, truth, task=f"febrl {name} (linkage)"))
    if json_output:
        console.print_json(as_json([json.loads(r.to_json()) for r in reports]))
        return
    table = Table("task", "records", "completeness", "links", "precision", "recall", "F1")
    for r in reports:
        table.add_row(
            r.task.removeprefix("febrl "),
            str(r.records),
            f"{r.pairs_completeness:.4f}",
            str(r.links),
            f"{r.precision:.4f}",
            f"{r.recall:.4f}",
            f"{r.f1:.4f}",
        )
    console.print(table)
    console.print(json.dumps({r.task: round(r.f1, 4) for r in reports}))


def _febrl_tasks(directory: Path) -> list[tuple[str, list[Path]]]:
    tasks: list[tuple[str, list[Path]]] = []
    names = sorted(p.name for p in directory.glob("dataset*.csv") if "true_matches" not in p.name)
    for name in names:
        stem = name.removesuffix(".csv")
        if re.fullmatch(r"dataset\d+", stem):
            tasks.append((stem, [directory / name]))
        found = re.fullmatch(r"(dataset\d+)a(.*)", stem)
        if found:
            partner = directory / f"{found.group(1)}b{found.group(2)}.csv"
            if partner.exists():
                tasks.append((f"{found.group(1)}{found.group(2)}", [directory / name, partner]))
    return tasks


def _truth(
    directory: Path, name: str, sources: list[list[IdentityRecord]]
) -> frozenset[tuple[str, str]]:
    file = directory / f"{name}_true_matches.csv"
    if file.exists():
        return read_true_pairs(file)
    entities: list[dict[str, list[str]]] = []
    for records in sources:
        by_entity: dict[str, list[str]] = {}
        for record in records:
            found = _FEBRL_ID.match(record.record_id)
            if found is None:
                raise InputError(
                    f"{name}: record id {record.record_id!r} has no entity number",
                    hint=f"give the true pairs in {file.name} (columns id_1,id_2)",
                )
            by_entity.setdefault(found.group(1), []).append(record.record_id)
        entities.append(by_entity)
    pairs: set[tuple[str, str]] = set()
    if len(entities) == 1:
        for ids in entities[0].values():
            ordered = sorted(ids)
            pairs.update((a, b) for i, a in enumerate(ordered) for b in ordered[i + 1 :])
    else:
        left, right = entities
        for entity, ids in left.items():
            pairs.update((a, b) for a in ids for b in right.get(entity, []))
    return frozenset(pairs)


def _read_records(
    file: Path, *, source: str | None, id_field: str, region: str | None
) -> list[SourceRecord]:
    if not file.is_file():
        fail(f"{file} is not a file")
    if file.suffix.lower() == ".csv":
        if source is None:
            fail("a CSV file needs --source NAME", hint="e.g. --source crm")
        with file.open(newline="", encoding="utf-8") as handle:
            rows = [
                {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
                for row in csv.DictReader(handle, skipinitialspace=True)
            ]
        return [
            _record(row, source=source, id_field=id_field, region=region, where=f"{file}:{n + 2}")
            for n, row in enumerate(rows)
        ]
    records = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{file}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            fail(f"{where}: not JSON: {exc.msg} at column {exc.colno}")
        if not isinstance(data, dict):
            fail(f"{where}: a record is a JSON object, got {type(data).__name__}")
        records.append(_record(data, source=source, id_field=id_field, region=region, where=where))
    return records


def _record(
    data: dict[str, Any], *, source: str | None, id_field: str, region: str | None, where: str
) -> SourceRecord:
    fields = data.get("fields")
    if fields is None:
        fields = {
            k: v for k, v in data.items() if k not in ("source", "record_id", id_field, "region")
        }
    if not isinstance(fields, dict):
        fail(f"{where}: fields is an object of field names and values")
    found_source = data.get("source", source)
    record_id = data.get("record_id", data.get(id_field))
    if not isinstance(found_source, str) or not found_source:
        fail(f"{where}: no source", hint="give --source or a source field")
    if record_id is None or str(record_id) == "":
        fail(f"{where}: no record id in field {id_field!r}", hint="--id-field NAME")
    found_region = data.get("region", region)
    return SourceRecord(
        found_source,
        str(record_id),
        fields,
        None if found_region is None else str(found_region),
    )


# -- accord context


@context_app.command("show")
def context_show(
    subject: Annotated[str, typer.Argument(help="a subject id")],
    purpose: Annotated[str, typer.Option("--purpose", help="why you read (a DPV purpose)")],
    category: Annotated[
        list[str] | None, typer.Option("--category", help="only this category (repeatable)")
    ] = None,
    principal: Annotated[str, typer.Option("--as", help="the agent name you read as")] = "cli",
    json_output: Json = False,
    database: Database = None,
) -> None:
    """Read a subject's context through the gateway, projected to what the purpose allows."""
    with opened(database) as accord, handled():
        result = accord.read_context(
            subject, purpose=purpose, principal=principal, categories=category
        )
    if json_output:
        console.print_json(as_json(result.to_json()))
        return
    if result.status != "executed":
        console.print(f"[red]{result.reason}[/red]: {escape(result.message)}")
        console.print(f"decision {result.decision_id}")
        raise typer.Exit(1)
    output = result.output or {}
    table = Table("category", "name", "value", "source", "recorded")
    for cat, section in sorted(output.items()):
        for name, attribute in sorted(section.get("attributes", {}).items()):
            table.add_row(
                cat,
                name,
                escape(json.dumps(attribute["value"])),
                ", ".join(attribute["sources"]),
                when(attribute["recorded_at"]),
            )
        for signal in section.get("signals", []):
            table.add_row(
                cat,
                f"{signal['name']} (signal)",
                escape(json.dumps(signal["value"])),
                signal["source"],
                when(signal["recorded_at"]),
            )
    console.print(table)
    if result.withheld:
        console.print(f"withheld for {purpose}: {', '.join(result.withheld)}")
    console.print(f"decision {result.decision_id}")


# -- accord retention


@retention_app.command("set")
def retention_set(
    category: Annotated[str, typer.Argument(help="a data category, e.g. pd:Purchase")],
    period: Annotated[str, typer.Argument(help="how long to keep it, e.g. 90d, 2y")],
    purpose: Annotated[
        str | None, typer.Option("--purpose", help="only items collected for this purpose")
    ] = None,
    action: Annotated[str, typer.Option("--action", help="delete or anonymise")] = "delete",
    by: By = None,
    database: Database = None,
) -> None:
    """Keep a category for a period, then delete or anonymise it."""
    actions: dict[str, stored_identity.RetentionAction] = {
        "delete": "delete",
        "anonymise": "anonymise",
    }
    if action not in actions:
        fail(f"unknown action {action!r}", hint="use delete or anonymise")
    with opened(database) as accord, handled():
        seconds = parse_duration(period)
        accord.retention.set_rule(
            tenant_of(accord),
            RetentionRule(category, seconds, actions[action], purpose),
            by=by or getpass.getuser(),
        )
    console.print(f"{category}{' for ' + purpose if purpose else ''}: {action} after {period}")


@retention_app.command("list")
def retention_list(json_output: Json = False, database: Database = None) -> None:
    """The retention rules."""
    with opened(database) as accord, handled():
        rules = accord.retention.rules(tenant_of(accord))
    if json_output:
        console.print_json(as_json(rules))
        return
    if not rules:
        console.print("no retention rules: context is kept until a subject is erased")
        return
    table = Table("category", "purpose", "period (days)", "action", "by", "at")
    for rule in rules:
        table.add_row(
            rule.category,
            rule.purpose or "any",
            f"{rule.period_seconds / 86400:g}",
            rule.action,
            rule.updated_by,
            when(rule.updated_at),
        )
    console.print(table)


@retention_app.command("run")
def retention_run(json_output: Json = False, database: Database = None) -> None:
    """Delete or anonymise every expired item not under legal hold, and record it."""
    with opened(database) as accord, handled():
        report = accord.apply_retention(by=getpass.getuser())
    if json_output:
        console.print_json(as_json(report.to_json()))
        return
    console.print(
        f"deleted {len(report.deleted)}, anonymised {len(report.anonymised)}, kept "
        f"{len(report.held)} under legal hold"
    )
