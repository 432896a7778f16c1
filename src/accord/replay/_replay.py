"""``replay_candidate``: re-run recorded runs against a candidate, in shadow, and report."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from accord.audit import Explanation
from accord.core import TenantId
from accord.errors import AccordError, ConfigurationError, InputError
from accord.journeys import load_journey_file
from accord.replay._candidate import Candidate, parse_candidate
from accord.replay._compare import Side, compare
from accord.replay._recorded import RecordedRun, select_runs
from accord.replay._report import ReplayReport, RunReplay, RunStatus
from accord.replay._scrub import Scrubber
from accord.replay._shadow import (
    Baseline,
    RecordedAnswers,
    ShadowRun,
    ShadowStore,
    log_redactor,
    shadow_store,
)
from accord.runtime import RunView
from accord.service import Accord
from accord.storage import TERMINAL, journeys, policies
from accord.storage import agents as stored_agents

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class _Applied:
    """The candidate as the shadow store holds it: the journey version to start runs on."""

    version: int | None
    notes: tuple[str, ...] = ()


def replay_candidate(
    accord: Accord,
    *,
    journey: str,
    candidate: Candidate | str,
    since: float,
    until: float | None = None,
    limit: int = 100,
    tenant: str | None = None,
    progress: Progress | None = None,
) -> ReplayReport:
    """Re-run the recorded runs of ``journey`` started in [since, until) against
    ``candidate`` in a shadow store, and report every decision that would change.

    Nothing is written to the production database and no connector is called: the shadow is
    a temporary Accord whose capabilities answer from the recorded calls. Runs of erased
    subjects are skipped and counted; the report holds no personal data of the runs.

    Raises:
        InputError: the candidate does not exist, names another journey, or the window is
            empty or reversed.
        JourneyInvalid, PolicyInvalid: a candidate file does not load or validate.
    """
    tenant_id = TenantId(tenant or accord.settings.tenant)
    chosen = parse_candidate(candidate) if isinstance(candidate, str) else candidate
    if until is not None and until <= since:
        raise InputError(
            "--until is not after --since: the window holds no runs",
            hint="give an --until later than --since, or leave it out",
        )
    if limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    _check_candidate(accord, tenant_id, journey, chosen)
    selection = select_runs(accord.db, tenant_id, journey, since=since, until=until, limit=limit)
    _check_capabilities(accord, selection.runs)
    scrub = Scrubber(log_redactor(accord))
    for recorded in selection.runs:
        _learn(scrub, recorded)
    groups: dict[int | None, list[RecordedRun]] = defaultdict(list)
    for recorded in selection.runs:
        groups[None if chosen.kind.startswith("policy") else _bundle_of(recorded)].append(recorded)
    results: dict[str, RunReplay] = {}
    notes: list[str] = []
    done = 0
    answers = RecordedAnswers()
    for bundle, members in groups.items():
        with shadow_store(accord, answers) as store:
            store.seed(tenant_id, accord, Baseline(bundle))
            store.seed_subjects(
                tenant_id, accord, {r.record.subject_id for r in members if r.record.subject_id}
            )
            applied = _apply(store, accord, tenant_id, chosen)
            notes.extend(n for n in applied.notes if n not in notes)
            for recorded in members:
                results[recorded.run_id] = _replay_one(store, accord, recorded, applied, scrub)
                done += 1
                if progress is not None:
                    progress(done, len(selection.runs))
    return ReplayReport(
        tenant=tenant_id,
        journey=journey,
        candidate=chosen.label,
        since=since,
        until=until,
        runs=tuple(results[r.run_id] for r in selection.runs),
        skipped_erased=selection.erased,
        notes=tuple(notes),
    )


def _check_candidate(accord: Accord, tenant: TenantId, journey: str, candidate: Candidate) -> None:
    with accord.db.read() as connection:
        if candidate.kind == "journey":
            assert candidate.name is not None and candidate.version is not None
            if candidate.name != journey:
                raise InputError(
                    f"candidate {candidate.label} is a version of {candidate.name!r}, but the "
                    f"runs replayed are of {journey!r}",
                    hint=f"use --candidate journey:{journey}@VERSION or --journey {candidate.name}",
                )
            if journeys.get_version(connection, tenant, journey, candidate.version) is None:
                known = [r.version for r in journeys.list_versions(connection, tenant, journey)]
                raise InputError(
                    f"candidate {candidate.label}: journey {journey!r} has no version "
                    f"{candidate.version} in tenant {tenant!r}",
                    hint=f"deployed versions: {', '.join(map(str, known)) or 'none'}; to try an "
                    "undeployed file use --candidate journey-file:PATH",
                )
        elif candidate.kind == "policy":
            assert candidate.version is not None
            if policies.get_version(connection, tenant, candidate.version) is None:
                latest = policies.latest_version(connection, tenant)
                raise InputError(
                    f"candidate {candidate.label}: tenant {tenant!r} has no policy bundle "
                    f"version {candidate.version}",
                    hint=f"deployed versions are 1 to {latest}; to try an undeployed file use "
                    "--candidate policy-file:PATH.cedar"
                    if latest
                    else "no bundle is deployed; try a file with --candidate policy-file:PATH",
                )
        elif candidate.kind == "policy-file":
            if policies.latest(connection, tenant) is None:
                raise InputError(
                    f"candidate {candidate.label}: tenant {tenant!r} has no policy bundle, so "
                    "there is no schema to check the file against",
                    hint="deploy a bundle first: accord policy deploy FILE --schema SCHEMA",
                )
        elif candidate.kind == "agent":
            assert candidate.name is not None and candidate.version is not None
            found = stored_agents.get_agent_version(
                connection, tenant, candidate.name, candidate.version
            )
            if found is None:
                known = [
                    r.version
                    for r in stored_agents.list_agent_versions(connection, tenant, candidate.name)
                ]
                raise InputError(
                    f"candidate {candidate.label}: agent {candidate.name!r} has no version "
                    f"{candidate.version} in tenant {tenant!r}",
                    hint=f"deployed versions: {', '.join(map(str, known))}"
                    if known
                    else "deploy it first: accord agent deploy SPEC",
                )
    if candidate.kind == "journey-file":
        assert candidate.path is not None
        loaded = load_journey_file(candidate.path)
        if loaded.spec.journey != journey:
            raise InputError(
                f"candidate {candidate.label} defines journey {loaded.spec.journey!r}, but the "
                f"runs replayed are of {journey!r}",
                hint=f"use --journey {loaded.spec.journey}, or a file of {journey!r}",
            )


def _apply(store: ShadowStore, accord: Accord, tenant: TenantId, candidate: Candidate) -> _Applied:
    if candidate.kind == "journey":
        return _Applied(candidate.version)
    if candidate.kind == "journey-file":
        assert candidate.path is not None
        version = store.deploy_journey(tenant, load_journey_file(candidate.path))
        return _Applied(version, (f"{candidate.label} is tried as shadow version {version}",))
    if candidate.kind == "policy":
        assert candidate.version is not None
        store.insert_bundle(accord, tenant, candidate.version)
        return _Applied(None)
    if candidate.kind == "policy-file":
        assert candidate.path is not None
        active = accord.policies.bundle(tenant)
        assert active.version is not None
        store.insert_bundle(accord, tenant, active.version)
        version = store.deploy_bundle(
            tenant, candidate.path.read_text(), active.schema, str(candidate.path)
        )
        return _Applied(
            None,
            (
                f"{candidate.label} is tried as shadow bundle v{version}, with the schema of "
                f"bundle v{active.version}",
            ),
        )
    assert candidate.name is not None and candidate.version is not None
    store.promote_agent(tenant, candidate.name, candidate.version)
    return _Applied(
        None,
        (
            f"agent blocks that pin a version of {candidate.name} keep it; the others ask "
            f"{candidate.name}@{candidate.version}",
        ),
    )


def _replay_one(
    store: ShadowStore,
    production: Accord,
    recorded: RecordedRun,
    applied: _Applied,
    scrub: Scrubber,
) -> RunReplay:
    record = recorded.record
    tenant = TenantId(record.tenant_id)
    before_view = RunView.from_record(record)
    before = Side(
        recorded.history,
        recorded.decisions,
        _ending(before_view),
        _explain(production, tenant, record.run_id),
        "ledger",
    )
    subject = scrub.subject(record.subject_id)
    try:
        shadow = store.rerun(recorded, version=applied.version or record.journey_version)
    except AccordError as exc:
        return RunReplay(
            record.run_id,
            subject,
            "failed",
            before.path(),
            (),
            before.ending,
            "not started",
            error=scrub.text(f"[{exc.code}] {exc.message}"),
        )
    after = _shadow_side(store, shadow)
    changes = compare(before, after, scrub)
    status: RunStatus = "diverged" if shadow.divergences else "changed" if changes else "unchanged"
    return RunReplay(
        record.run_id,
        subject,
        status,
        before.path(),
        after.path(),
        before.ending,
        after.ending,
        tuple(changes),
        tuple(scrub.text(d) for d in shadow.divergences),
        tuple(scrub.text(w) for w in shadow.waits) if changes else (),
    )


def _shadow_side(store: ShadowStore, shadow: ShadowRun) -> Side:
    assert shadow.run_id is not None
    runtime = store.accord.runtime
    view = runtime.get(store.tenant, shadow.run_id)
    return Side(
        runtime.history(store.tenant, shadow.run_id),
        runtime.decisions(store.tenant, shadow.run_id),
        _ending(view),
        _explain(store.accord, store.tenant, shadow.run_id),
        "shadow ledger",
    )


def _explain(accord: Accord, tenant: TenantId, run_id: str) -> Explanation | None:
    try:
        return accord.explain(run_id, tenant=tenant)
    except AccordError:
        return None


def _ending(view: RunView) -> str:
    if view.status in TERMINAL:
        return view.status + (f" with outcome {view.outcome}" if view.outcome else "")
    waiting = [
        f"{p.block} ({p.waiting_for.split(':', 1)[0]})" for p in view.positions if p.waiting_for
    ]
    return "waiting at " + ", ".join(waiting) if waiting else view.status


def _bundle_of(recorded: RecordedRun) -> int | None:
    for decision in recorded.decisions:
        version = (decision.record.get("policy") or {}).get("bundle_version")
        if isinstance(version, int):
            return version
    return None


def _check_capabilities(accord: Accord, runs: Sequence[RecordedRun]) -> None:
    """Every capability the recorded runs called must be registered here, with its contract:
    without it a shadow run would fail at that call and report a change that is not one."""
    called = {capability for run in runs for capability, _ in run.outputs().values()}
    missing = sorted(name for name in called if accord.capabilities.find(name) is None)
    if missing:
        raise ConfigurationError(
            f"the recorded runs called {len(missing)} capabilities this instance does not "
            f"register: {', '.join(missing[:8])}{'…' if len(missing) > 8 else ''}",
            hint="replay with the capability modules and catalogues production runs with "
            "(ACCORD_CAPABILITY_MODULES, ACCORD_CAPABILITY_CATALOGUES and the connector URLs)",
        )


def _learn(scrub: Scrubber, recorded: RecordedRun) -> None:
    scrub.subject(recorded.record.subject_id)
    scrub.learn(recorded.record.input)
    for entry in recorded.history:
        scrub.learn(entry.detail.get("output"))
        scrub.learn(entry.detail.get("prompt"), "text")
        scrub.learn({k: v for k, v in entry.detail.items() if k in ("reason", "data", "value")})
    for signal in recorded.signals:
        scrub.learn(signal.payload)
