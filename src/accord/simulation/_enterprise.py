"""The sample enterprise: its sandbox systems, and Accord deployed in front of them.

A manifest (``examples/enterprise/enterprise.yaml``) names what a fresh Accord needs before the
first customer arrives: the capability catalogue, the Cedar bundle, agents, journeys, lawful
bases, review queues and staff. :func:`open_enterprise` starts the sandbox's services on free
loopback ports, builds Accord against them (connectors reach the services over real HTTP) and
deploys the manifest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from accord.core import TenantId, parse_duration
from accord.errors import ConfigurationError, InputError
from accord.journeys import load_journey_file
from accord.reviews import Queue
from accord.sandbox import SandboxEnterprise
from accord.service import Accord, Settings, build

TENANT = TenantId("default")
MANIFEST_NAME = "enterprise.yaml"


class OffsetClock:
    """The system time plus an offset a simulation moves forward to let timers fire.

    Accord and the sandbox's services share one, so a billing quarter, a grant's expiry and a
    run's timer agree on what time it is.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self._offset += seconds

    @property
    def offset(self) -> float:
        return self._offset


@dataclass(frozen=True, slots=True)
class Basis:
    purpose: str
    basis: str
    categories: tuple[str, ...]
    description: str


@dataclass(frozen=True, slots=True)
class StaffMember:
    person_id: str
    name: str
    roles: tuple[str, ...]
    skills: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Manifest:
    """What to deploy, with every path resolved against the manifest's directory."""

    path: Path
    catalogue: Path
    cedar: Path
    schema: Path
    agents: tuple[Path, ...]
    journeys: tuple[Path, ...]
    bases: tuple[Basis, ...]
    queues: tuple[Queue, ...]
    staff: tuple[StaffMember, ...]
    offers: tuple[Path, ...] = ()

    @property
    def root(self) -> Path:
        return self.path.parent


def find_manifest() -> Path:
    """``examples/enterprise/enterprise.yaml`` of the checkout (or the working directory)."""
    here = Path(__file__).resolve()
    for base in (Path.cwd(), here.parents[3]):
        candidate = base / "examples" / "enterprise" / MANIFEST_NAME
        if candidate.is_file():
            return candidate
    raise ConfigurationError(
        "the sample enterprise (examples/enterprise/enterprise.yaml) was not found",
        hint="run from the root of an Accord checkout, or pass the manifest's path",
    )


def load_manifest(path: Path) -> Manifest:
    """Read a manifest; every mistake names the field and the file.

    Raises:
        InputError: unreadable YAML, a missing or mistyped field, or a file that is not there.
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read the manifest ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("enterprise") != 1:
        raise InputError(
            f"{path}: not an enterprise manifest", hint="the file starts with `enterprise: 1`"
        )
    root = path.parent

    def file(value: Any, where: str) -> Path:
        if not isinstance(value, str) or not value:
            raise InputError(f"{path}: {where} must be a relative file path")
        resolved = (root / value).resolve()
        if not resolved.is_file():
            raise InputError(f"{path}: {where}: {resolved} does not exist")
        return resolved

    def listed(key: str) -> list[Any]:
        value = raw.get(key, [])
        if not isinstance(value, list):
            raise InputError(f"{path}: {key} must be a list")
        return value

    policies = raw.get("policies")
    if not isinstance(policies, dict):
        raise InputError(f"{path}: policies must map cedar and schema to files")
    bases = []
    for index, entry in enumerate(listed("bases")):
        where = f"bases[{index}]"
        if not isinstance(entry, dict) or not {"purpose", "basis"} <= entry.keys():
            raise InputError(f"{path}: {where} needs purpose and basis")
        bases.append(
            Basis(
                str(entry["purpose"]),
                str(entry["basis"]),
                tuple(str(c) for c in entry.get("categories") or ()),
                str(entry.get("description", "")),
            )
        )
    queues = []
    for index, entry in enumerate(listed("queues")):
        if not isinstance(entry, dict) or "name" not in entry:
            raise InputError(f"{path}: queues[{index}] needs a name")
        try:
            sla = parse_duration(entry["sla"]) if entry.get("sla") is not None else None
        except ValueError as exc:
            raise InputError(f"{path}: queues[{index}].sla: {exc}") from exc
        queues.append(
            Queue(
                str(entry["name"]),
                roles=tuple(str(r) for r in entry.get("roles") or ()),
                sla=sla,
                escalate_to=entry.get("escalate_to"),
                description=str(entry.get("description", "")),
            )
        )
    staff = []
    for index, entry in enumerate(listed("people")):
        if not isinstance(entry, dict) or "id" not in entry or not entry.get("roles"):
            raise InputError(f"{path}: people[{index}] needs an id and roles")
        staff.append(
            StaffMember(
                str(entry["id"]),
                str(entry.get("name", "")),
                tuple(str(r) for r in entry["roles"]),
                tuple(str(s) for s in entry.get("skills") or ()),
            )
        )
    return Manifest(
        path=path,
        catalogue=file(raw.get("catalogue"), "catalogue"),
        cedar=file(policies.get("cedar"), "policies.cedar"),
        schema=file(policies.get("schema"), "policies.schema"),
        agents=tuple(file(a, f"agents[{i}]") for i, a in enumerate(listed("agents"))),
        journeys=tuple(file(j, f"journeys[{i}]") for i, j in enumerate(listed("journeys"))),
        offers=tuple(file(o, f"offers[{i}]") for i, o in enumerate(listed("offers"))),
        bases=tuple(bases),
        queues=tuple(queues),
        staff=tuple(staff),
    )


@dataclass
class Enterprise:
    """A running sample enterprise: Accord, the sandbox services and the shared clock."""

    accord: Accord
    sandbox: SandboxEnterprise
    manifest: Manifest
    clock: OffsetClock
    deployed: list[str] = field(default_factory=list)

    def url(self, service: str) -> str:
        return self.sandbox.url(service)


def deploy(accord: Accord, manifest: Manifest, *, actor: str = "enterprise") -> list[str]:
    """Deploy the manifest into ``accord``; returns one line per thing deployed."""
    lines = []
    bundle = accord.policies.deploy(
        TENANT,
        manifest.cedar.read_text(encoding="utf-8"),
        manifest.schema.read_text(encoding="utf-8"),
        source_name=manifest.cedar.name,
        actor=actor,
    )
    lines.append(
        f"policy bundle v{bundle.version}: {len(bundle.compiled_policies)} Cedar policies "
        f"from {manifest.cedar.name}, validated against {manifest.schema.name}"
    )
    for spec in manifest.agents:
        agent = accord.deploy_agent(spec, by=actor)
        lines.append(f"agent {agent.name} v{agent.version}")
    for basis in manifest.bases:
        accord.consent.set_basis(
            TENANT,
            basis.purpose,
            basis.basis,
            categories=list(basis.categories) or None,
            description=basis.description,
            actor=actor,
        )
    covered = {basis.purpose for basis in manifest.bases}
    consent_only = sorted(_journey_purposes(manifest) - covered)
    lines.append(
        f"lawful bases for {len(covered)} purposes"
        + (
            f"; {', '.join(consent_only)} {'needs' if len(consent_only) == 1 else 'need'} each "
            "customer's consent"
            if consent_only
            else ""
        )
    )
    for queue in manifest.queues:
        accord.put_queue(queue, actor=actor)
    for member in manifest.staff:
        accord.put_person(
            member.person_id,
            roles=list(member.roles),
            skills=list(member.skills),
            name=member.name,
            actor=actor,
        )
    lines.append(f"{len(manifest.queues)} review queues, {len(manifest.staff)} staff")
    for path in manifest.offers:
        version = accord.deploy_offers(path, by=actor)
        lines.append(f"offer catalogue {path.stem} v{version}")
    for path in manifest.journeys:
        deployment = accord.runtime.catalog.deploy(
            TENANT, load_journey_file(path), deployed_by=actor
        )
        lines.append(f"journey {deployment.name} v{deployment.version} {deployment.digest[:19]}")
    return lines


MAPPINGS = frozenset({"input", "output", "proposal", "context", "resource", "recommend"})


def _journey_purposes(manifest: Manifest) -> set[str]:
    """Every purpose the manifest's journeys and their blocks name (not the values of their
    mappings, which are expressions: a capability may take a purpose as input)."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            purpose = value.get("purpose")
            if isinstance(purpose, str):
                found.add(purpose)
            for key, item in value.items():
                if key not in MAPPINGS:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for path in manifest.journeys:
        walk(load_journey_file(path).spec.model_dump(mode="json"))
    return found


@contextmanager
def open_enterprise(
    workdir: Path,
    *,
    database_url: str | None = None,
    manifest: Manifest | None = None,
    region: str | None = None,
    settings: dict[str, Any] | None = None,
) -> Iterator[Enterprise]:
    """Start the sandbox's services and an Accord deployed in front of them.

    ``workdir`` holds the sandbox's databases (reseeded when absent) and, by default, Accord's
    SQLite file. Both stop when the block ends.
    """
    manifest = manifest or load_manifest(find_manifest())
    workdir.mkdir(parents=True, exist_ok=True)
    clock = OffsetClock()
    url = database_url or f"sqlite:///{workdir / 'accord.db'}"
    with SandboxEnterprise(workdir / "sandbox", clock=clock) as sandbox:
        options: dict[str, Any] = {
            "database_url": url,
            "capability_catalogues": [str(manifest.catalogue)],
            "connector_urls": dict(sandbox.urls),
            "region": region,
            **(settings or {}),
        }
        accord = build(Settings(**options), clock=clock)
        try:
            enterprise = Enterprise(accord, sandbox, manifest, clock)
            enterprise.deployed = deploy(accord, manifest)
            yield enterprise
        finally:
            accord.close()
