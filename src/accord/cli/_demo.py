"""``accord demo``: the sample enterprise's journeys, end to end, on embedded SQLite.

The sandbox's systems start on loopback ports, Accord is deployed in front of them from
``examples/enterprise``, and a seeded mix of synthetic customers and employees goes through every
journey while the people in it answer codes, upload documents, confirm proposals and decide
review items. A few items are left in the review inbox for whoever opens the console.

Before them, the experiment ``retention-offer`` starts and a wave of customers who want to leave
(every sandbox customer who can be e-mailed an offer and is not in the mix's retention cases)
goes through the retention journey, each weighing their offer with the customers' response
model; its report, read as ``accord experiment report`` reads it, closes the outcomes. The wave
goes first so that the mix's runs stay the newest ones ``accord run list`` shows.

The demo recreates its database and the ``demo-enterprise/`` directory beside it, so it marks
the database it makes (``<database>.demo``) and refuses to touch a file without that mark.
"""

from __future__ import annotations

import re
import shutil
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from accord.api import issue_token
from accord.cli._common import console, handled
from accord.cli._experiments import show, started
from accord.cli._serve import serve_until_stopped
from accord.errors import InputError
from accord.experiments import ExperimentSpec, load_experiment
from accord.portal import SignIns
from accord.replay import replay_candidate
from accord.service import Accord
from accord.simulation import (
    TENANT,
    Case,
    Driver,
    Enterprise,
    Finished,
    demo_mix,
    open_enterprise,
    refusals_by_reason,
    retention_wave,
)
from accord.storage import TERMINAL

PEOPLE = 60
SEED = 7
EXPERIMENT = "experiments/retention-offer.yaml"
"""The demo's experiment, beside the manifest."""
LEFT_FOR_PEOPLE = {"refund:supervisor": 2, "support:talk_to_human": 1, "access:read": 1}
"""Cases whose review items nobody decides, so the console has real work waiting."""
REFUND_LIMIT = 'decimal("100.00")'
LOWER_REFUND_LIMIT = 'decimal("50.00")'
"""What the what-if section changes in the bundle: the automatic refund limit."""


def _leave_some_for_people(cases: list[Case]) -> list[Case]:
    left: Counter[str] = Counter()
    kept = []
    for case in cases:
        leave = left[case.kind] < LEFT_FOR_PEOPLE.get(case.kind, 0)
        left[case.kind] += leave
        kept.append(replace(case, staff="leave") if leave else case)
    return kept


def demo_marker(database: Path) -> Path:
    """The file that says ``database`` is one the demo made and may recreate."""
    return Path(f"{database}.demo")


def _reset(database: Path, workdir: Path) -> None:
    """Remove a previous demo's database and enterprise; refuse anything else.

    Raises:
        InputError: ``database`` exists and no demo made it.
    """
    marker = demo_marker(database)
    if database.exists() and not marker.is_file():
        raise InputError(
            f"{database} already exists and is not a database an earlier `accord demo` made "
            f"(there is no {marker.name} beside it); the demo recreates its database and "
            f"removes {workdir}, so it left both alone",
            hint="choose another --database, or delete the file yourself if you no longer need it",
        )
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(workdir, ignore_errors=True)
    marker.write_text(
        "This database was made by `accord demo`, which recreates it on its next run.\n",
        encoding="utf-8",
    )


def run_demo(
    database: Path, *, serve: bool = False, host: str = "127.0.0.1", port: int = 8080
) -> None:
    """Run the demo on ``database`` (made by an earlier demo, or not there yet).

    Raises:
        typer.Exit: 2 when ``database`` exists and no demo made it (nothing is touched).
    """
    workdir = database.parent / "demo-enterprise"
    with handled():
        _reset(database, workdir)
    url = f"sqlite:///{database}"
    console.rule("[bold]Accord demo: the sample enterprise[/bold]")
    console.print(
        f"Embedded mode: SQLite at {database}, in-process worker; the sandbox's CRM, billing, "
        "orders, helpdesk, KYC, notifications and directory answer over HTTP on loopback"
    )
    with handled(), open_enterprise(workdir, database_url=url) as enterprise:
        accord = enterprise.accord
        design = load_experiment(enterprise.manifest.root / EXPERIMENT)
        accord.experiments.create(TENANT, design, actor="enterprise")
        console.print("\n[bold]1. Deploy journeys and governance[/bold]")
        for line in enterprise.deployed:
            console.print(f"   {line}")
        console.print(f"   {started(design)}", markup=False)
        console.print(f"   {len(accord.capabilities)} capabilities behind the gateway")
        for name, service_url in enterprise.sandbox.urls.items():
            console.print(f"   {name:<14}{service_url}", markup=False, highlight=False)

        first, repeats = demo_mix(enterprise, people=PEOPLE, seed=SEED)
        first = _leave_some_for_people(first)
        wave = retention_wave(
            enterprise,
            seed=SEED,
            leave_out={str(c.subject) for c in first if c.journey == "retention_offer"},
        )
        console.print(
            f"\n[bold]2. The experiment: {len(wave)} customers who want to leave are offered "
            "a discount[/bold]"
        )
        with Driver(enterprise) as wave_driver:
            began = time.monotonic()
            _drive_with_progress(wave_driver, [wave])
            wave_results = wave_driver.results()
            _wave_summary(wave_results, time.monotonic() - began)

        people = len({case.subject for case in [*first, *repeats]})
        console.print(
            f"\n[bold]3. {len(first) + len(repeats)} requests from {people} synthetic "
            "customers and employees arrive[/bold]"
        )
        with Driver(enterprise) as driver:
            began = time.monotonic()
            _drive_with_progress(driver, [first, repeats])
            elapsed = time.monotonic() - began
            results = driver.results()
            _summary(accord, driver, results, elapsed)
        _experiment_report(enterprise, design, wave_driver, wave_results)
        _what_if(enterprise.manifest.cedar, accord, workdir)
        _evidence(accord)
        _console_links(accord, host, port, served=serve)
        _portal_link(enterprise, results, host, port)
        if serve:
            serve_until_stopped(accord, host=host, port=port)


def _drive_with_progress(driver: Driver, waves: Sequence[Sequence[Case]]) -> None:
    """Start each wave once the ones before it have settled, with a bar per journey."""
    totals = Counter(case.journey for wave in waves for case in wave)
    with Progress(
        TextColumn("   {task.description:<22}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        bars = {name: progress.add_task(name, total=count) for name, count in totals.items()}

        def update(current: Driver) -> None:
            settled: Counter[str] = Counter()
            for finished in current.results():
                if (
                    finished.status in TERMINAL
                    or finished.error is not None
                    or (finished.waiting and not _answerable(finished))
                ):
                    settled[finished.case.journey] += 1
            for name, bar in bars.items():
                progress.update(bar, completed=settled[name])

        for wave in waves:
            for case in wave:
                driver.start(case)
            driver.settle(seconds=120, on_progress=update)
        update(driver)


def _answerable(finished: Finished) -> bool:
    """A run waiting on something the demo's people answer is still moving."""
    return any(
        kind in wait for wait in finished.waiting for kind in ("event:", "confirm", "retry")
    ) or (finished.case.staff != "leave" and any("human" in w for w in finished.waiting))


def _is_open(finished: Finished) -> bool:
    """A run that has not ended (a start the runtime refused never began, so is not open)."""
    return finished.status not in TERMINAL and finished.status != "refused_at_start"


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _summary(accord: Accord, driver: Driver, results: list[Finished], elapsed: float) -> None:
    console.print(f"\n[bold]4. Outcomes[/bold] ({elapsed:.1f} s)")
    by_journey: dict[str, list[Finished]] = defaultdict(list)
    for finished in results:
        by_journey[finished.case.journey].append(finished)
    escalations: Counter[str] = Counter()
    for item in accord.review_items(statuses=None, limit=1000):
        run = accord.runtime.get(TENANT, item.run_id)
        escalations[run.journey] += 1
    table = Table(
        "journey",
        Column("runs", justify="right"),
        Column("ended", justify="right"),
        Column("open", justify="right"),
        Column("review items", justify="right"),
        Column("p50 s", justify="right"),
        Column("p99 s", justify="right"),
    )
    lines = []
    for journey, found in sorted(by_journey.items()):
        outcomes = Counter(f.outcome or f.status for f in found if f.status == "completed")
        latencies = [f.seconds for f in found if f.seconds is not None]
        waiting = sum(1 for f in found if _is_open(f))
        table.add_row(
            journey,
            str(len(found)),
            str(len(latencies)),
            str(waiting),
            str(escalations[journey]),
            f"{_percentile(latencies, 50):.2f}",
            f"{_percentile(latencies, 99):.2f}",
        )
        ended = ", ".join(f"{name} {count}" for name, count in outcomes.most_common())
        lines.append(f"   {journey}: {ended or 'none yet'}")
    console.print(table)
    console.print(
        "   open: still waiting on a timer or on a review item left for you; "
        "latency from start to end",
        markup=False,
    )
    console.print("   how they ended:", markup=False)
    for line in lines:
        console.print(line, markup=False)
    failed = [
        f
        for f in results
        if f.status in ("failed", "refused_at_start")
        or (f.error is not None and f.status not in TERMINAL)
    ]
    for finished in failed:
        console.print(
            f"   {finished.case.name}: {finished.status} ({finished.error})", markup=False
        )
    refusals = refusals_by_reason(accord, [f.run_id for f in results if f.run_id])
    reasons = Table("gateway refusals by reason (policy)", "count")
    for reason, count in refusals.most_common():
        reasons.add_row(reason, str(count))
    console.print(reasons)
    people = ", ".join(f"{what} {count}" for what, count in sorted(driver.actions.items()))
    console.print(f"   what people did: {people}", markup=False)
    still = Counter(
        w.split(" (", 1)[1].rstrip(")").split(":", 1)[0]
        for f in results
        for w in f.waiting
        if " (" in w
    )
    if still:
        console.print(
            "   still waiting: "
            + ", ".join(f"{count} on {kind}" for kind, count in still.most_common())
            + " (durable: they continue when the time comes or a person decides)",
            markup=False,
        )


def _wave_summary(results: list[Finished], elapsed: float) -> None:
    ended = Counter(f.outcome or f.status for f in results if f.status in TERMINAL)
    staying = sum(1 for f in results if any(w.startswith("settle_in ") for w in f.waiting))
    others = sum(1 for f in results if _is_open(f)) - staying
    console.print(
        f"   {staying} accepted, their discount applied (each run waits 30 days to follow up); "
        + ", ".join(f"{outcome} {count}" for outcome, count in ended.most_common())
        + (f"; {others} still open" if others else "")
        + f" ({elapsed:.1f} s)",
        markup=False,
    )
    for finished in results:
        if finished.error is not None or finished.status in ("failed", "refused_at_start"):
            console.print(
                f"   {finished.case.name}: {finished.status} ({finished.error})", markup=False
            )


def _experiment_report(
    enterprise: Enterprise, design: ExperimentSpec, driver: Driver, wave: list[Finished]
) -> None:
    """The experiment's report as ``accord experiment report`` shows it, and what the wave's
    customers' response model says the truth is."""
    console.print(f"\n[bold]5. The experiment's report[/bold] ({design.description})")
    show(
        enterprise.accord.experiments.watch(TENANT, design.experiment), primary=design.primary.name
    )
    response = driver.response
    chances: dict[str, list[float]] = defaultdict(list)
    for finished in wave:
        if not finished.run_id or finished.weighed is None:
            continue
        arm = enterprise.accord.runtime.get(TENANT, finished.run_id).steps.get("arm") or {}
        variant = str(arm.get("variant", ""))
        if variant in {v.name for v in design.variants}:
            chances[variant].append(response.acceptance(finished.weighed))
    if chances:
        expected = {
            v.name: sum(chances[v.name]) / len(chances[v.name])
            for v in design.variants
            if chances[v.name]
        }
        console.print(
            "   the truth for the wave (the report also counts the mix's retention customers): "
            "the wave's customers accept p% off with probability "
            f"1 / (1 + e^(-{response.slope:g} (p - {response.midpoint:g}))), so for the offers "
            "each arm made them they keep "
            + ", ".join(f"{arm} {rate:.3f}" for arm, rate in expected.items()),
            markup=False,
        )


def _what_if(bundle: Path, accord: Accord, workdir: Path) -> None:
    """Replay the refunds in shadow under a candidate bundle with a lower approval limit."""
    console.print("\n[bold]6. What if supervisors approved every refund above 50?[/bold]")
    current = bundle.read_text(encoding="utf-8")
    lowered = current.replace(REFUND_LIMIT, LOWER_REFUND_LIMIT)
    if lowered == current:
        console.print(
            f"   skipped: {bundle} has no {REFUND_LIMIT} limit to lower any more, so there is "
            "no candidate to replay",
            markup=False,
        )
        return
    candidate = workdir / "candidate-refund-limit-50.cedar"
    candidate.write_text(lowered, encoding="utf-8")
    report = replay_candidate(
        accord, journey="refund_request", candidate=f"policy-file:{candidate}", since=0.0
    )
    counts = report.counts
    console.print(
        f"   accord replay: {counts['replayed']} recorded refunds re-run in shadow against "
        f"{candidate.name} (nothing called, nothing written): {counts['unchanged']} "
        f"unchanged, {counts['changed']} would change",
        markup=False,
    )
    for run in report.runs:
        change = next((c for c in run.changes if c.kind == "gateway" and c.block == "refund"), None)
        if change is None or change.after is None:
            continue
        console.print(f"   {run.run_id}: before  {change.recorded}", markup=False)
        console.print(f"   {' ' * len(run.run_id)}  after   {change.candidate}", markup=False)
        break


def _evidence(accord: Accord) -> None:
    console.print("\n[bold]7. Evidence: the ledger proves it[/bold]")
    head = accord.tree_head(fresh=True)
    console.print(
        f"   signed tree head: {head.tree_size} entries, root {head.root_hash[:16]}…, "
        f"Ed25519 key {head.key_id}"
    )
    report = accord.verify_ledger()
    console.print(
        f"   audit verify: {'ok' if report.ok else 'FAILED'} ({report.entries} entries "
        f"recomputed, {report.heads} heads checked)"
    )
    url = accord.settings.database_url
    console.print(
        "   explore:\n"
        f"   accord run list --database {url}\n"
        f"   accord review list --database {url}\n"
        f"   accord explain RUN_ID --database {url}\n"
        f"   accord audit verify --database {url}",
        markup=False,
    )


LINK = re.compile(r"(http://\S+/portal/link\?token=[A-Za-z0-9._~-]+)")


def _portal_link(enterprise: Enterprise, results: list[Finished], host: str, port: int) -> None:
    """Sign a customer with an open case in to the portal the way they would: ask for a link,
    which reaches their inbox (the sandbox's notifications service) through the gateway."""
    waiting = [
        f
        for f in results
        if f.case.journey == "refund_request" and f.status not in TERMINAL and f.case.subject
    ]
    if not waiting:
        return
    customer_id = str(waiting[0].case.subject)
    with httpx.Client(timeout=10.0) as http:
        customer = http.get(f"{enterprise.url('crm')}/customers/{customer_id}").json()
        email = customer["email"]
        proposal = _ask_for_a_remedy(enterprise, http, customer_id, customer["retail_user_id"])
        SignIns(enterprise.accord).request(
            TENANT, email, link_base=f"http://{host}:{port}/portal/link"
        )
        enterprise.accord.runtime.drive()
        inbox = http.get(
            f"{enterprise.url('notifications')}/messages", params={"recipient": email}
        ).json()
    links = [m for message in inbox["messages"] for m in LINK.findall(message["body"])]
    console.print("\n[bold]9. The customer portal[/bold]")
    if not links:
        console.print(f"   no sign-in link reached {customer_id}'s inbox", markup=False)
        return
    console.print(
        f"   {customer_id} has a refund waiting for a supervisor"
        + (f", and {proposal} waiting for their answer" if proposal else "")
        + "; the sign-in link the portal just e-mailed them (valid for 10 minutes, once):",
        markup=False,
    )
    console.print(f"   {links[-1]}", markup=False, soft_wrap=True)
    console.print(
        "   there: My cases, Waiting for your answer, My consents, and the Support chat "
        "(each conversation is one durable run of support_chat)",
        markup=False,
    )


def _ask_for_a_remedy(
    enterprise: Enterprise, http: httpx.Client, customer_id: str, user_id: str
) -> str | None:
    """The customer writes to support about one of their orders, so that the portal has a
    proposal waiting for their answer; what it proposes, or None when they have no order a
    remedy fits."""
    orders = http.get(f"{enterprise.url('orders')}/users/{user_id}/orders").json()["orders"]
    by_status = {order["status"]: order["order_id"] for order in reversed(orders)}
    if "pending" in by_status:
        order_id, message, what = by_status["pending"], "I want to cancel my order", "cancelling"
    elif "delivered" in by_status:
        order_id, message, what = (
            by_status["delivered"],
            "can I get a refund for my order",
            "a refund of",
        )
    else:
        return None
    accord = enterprise.accord
    started = accord.runtime.start(
        TENANT,
        "support_resolution",
        input={"customer_id": customer_id, "message": message, "order_id": order_id},
        subject=customer_id,
        idempotency_key=f"demo/portal-proposal/{customer_id}",
    )
    accord.runtime.drive()
    view = accord.runtime.get(TENANT, started.run_id)
    if not any((p.waiting_for or "").startswith("confirm") for p in view.positions):
        return None
    return f"{what} order {order_id}"


def _console_links(accord: Accord, host: str, port: int, *, served: bool) -> None:
    keys = accord.settings.resolved_keys_dir()
    settings = accord.settings
    now = time.time()

    def token(subject: str, role: str) -> str:
        return issue_token(
            keys,
            subject=subject,
            tenant=TENANT,
            roles=[role],
            now=now,
            issuer=settings.api_issuer,
            audience=settings.api_audience,
            roles_claim=settings.api_roles_claim,
            tenant_claim=settings.api_tenant_claim,
        )

    base = f"http://{host}:{port}"
    open_items = accord.review_items(limit=1000)
    queues = Counter(item.queue for item in open_items)
    console.print("\n[bold]8. The console and the API[/bold]")
    console.print(
        f"   {len(open_items)} items wait in the review inbox: "
        + ", ".join(f"{queue} {count}" for queue, count in queues.most_common()),
        markup=False,
    )
    console.print("   reviewer sam.supervisor (valid for 8 hours):", markup=False)
    console.print(
        f"   {base}/console/sign-in?next=/console/reviews&token="
        f"{token('sam.supervisor', 'supervisor')}",
        markup=False,
        soft_wrap=True,
    )
    console.print("   operator, for the dashboard and the API (Authorization: Bearer …):")
    console.print(f"   {token('demo.operator', 'operator')}", markup=False, soft_wrap=True)
    if served:
        console.print(f"   serving {base} (API /v1, console /console) until Ctrl-C", markup=False)
    else:
        console.print(
            f"   `accord serve --database {accord.settings.database_url}` serves them",
            markup=False,
        )
