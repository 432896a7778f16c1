"""An experiment's design, read from YAML and checked at load with every error located."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from accord.errors import InputError
from accord.experiments._analysis import required_sample

NAME = r"^[a-z][a-z0-9_-]{0,63}$"
Kind = Literal["journey", "decision_table", "policy", "agent"]


LARGEST = 1e12
"""The largest magnitude a design's effect, spread, baseline, scale or tolerance may state."""
SMALLEST = 1e-9
"""The smallest minimum effect, spread or guardrail scale a design may state."""
MOST_SAMPLE = 10**9
"""The most outcomes per arm a design may plan for; one needing more cannot be run."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Target(_Strict):
    """What the arms differ in: a journey version, a decision table, a policy-bundle candidate
    or an agent version. The journey reads its arm (``experiment.assign``) and acts on it."""

    kind: Kind
    name: str = Field(min_length=1, max_length=128)


class Variant(_Strict):
    name: str = Field(pattern=NAME)
    weight: float = Field(default=1.0, gt=0, le=1000)
    description: str = ""


class Metric(_Strict):
    """The primary metric: what the experiment is meant to move, and by how much at least."""

    name: str = Field(pattern=NAME)
    kind: Literal["binary", "number"]
    better: Literal["higher", "lower"] = "higher"
    minimum_effect: float = Field(
        ge=SMALLEST, le=LARGEST, description="the smallest absolute change worth finding"
    )
    baseline: float | None = Field(
        default=None,
        ge=-LARGEST,
        le=LARGEST,
        description="the control's expected mean (a rate, for a binary metric)",
    )
    sd: float | None = Field(
        default=None, ge=SMALLEST, le=LARGEST, description="per-unit spread, number metrics"
    )

    @model_validator(mode="after")
    def _spread_known(self) -> Metric:
        if self.kind == "binary" and self.baseline is not None and not 0 < self.baseline < 1:
            raise ValueError("a binary metric's baseline is a rate between 0 and 1")
        return self

    def spread(self) -> float | None:
        """The per-unit standard deviation the sample size is planned with."""
        if self.sd is not None:
            return self.sd
        if self.kind == "binary" and self.baseline is not None:
            return float((self.baseline * (1 - self.baseline)) ** 0.5)
        return None


class Guardrail(_Strict):
    """A metric that must not get worse: the experiment stops as soon as the data show, with
    the experiment's confidence, that a variant made it worse by more than ``tolerance``."""

    name: str = Field(pattern=NAME)
    worse: Literal["higher", "lower"]
    tolerance: float = Field(default=0.0, ge=0, le=LARGEST)
    scale: float = Field(
        ge=SMALLEST,
        le=LARGEST,
        description="the change the guardrail's test is tuned to notice, in its units",
    )


class ExperimentSpec(_Strict):
    experiment: str = Field(pattern=NAME)
    version: int = Field(default=1, ge=1, le=2**31 - 1)
    description: str = ""
    target: Target
    control: str = Field(pattern=NAME)
    variants: tuple[Variant, ...] = Field(min_length=2, max_length=10)
    holdout: float = Field(
        default=0.0, ge=0, le=0.5, description="share of subjects kept out of every arm"
    )
    primary: Metric
    guardrails: tuple[Guardrail, ...] = ()
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0.5, lt=1)
    minimum_sample: int = Field(
        default=100, ge=2, le=MOST_SAMPLE, description="per arm, before any decision is drawn"
    )

    @model_validator(mode="after")
    def _arms(self) -> ExperimentSpec:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names repeat: {', '.join(names)}")
        if self.control not in names:
            raise ValueError(f"control {self.control!r} is not one of the variants {names}")
        if "holdout" in names:
            raise ValueError("'holdout' names the subjects kept out; call the variant otherwise")
        metrics = [self.primary.name, *(g.name for g in self.guardrails)]
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"metric names repeat: {', '.join(metrics)}")
        self.planned_sample()
        return self

    def planned_sample(self) -> int | None:
        """Outcomes per arm the design plans for (None: a number metric without ``sd``).

        Raises:
            ValueError: the design would need more than :data:`MOST_SAMPLE` per arm.
        """
        spread = self.primary.spread()
        if spread is None:
            return None
        # A/B/n: each treatment is compared with the control at alpha / treatments (Bonferroni)
        alpha = self.alpha / max(1, len(self.treatments))
        try:
            planned = required_sample(
                self.primary.minimum_effect, spread, alpha=alpha, power=self.power
            )
        except (OverflowError, InputError) as exc:
            raise ValueError(
                f"primary.minimum_effect {self.primary.minimum_effect!r} is too small for the "
                f"metric's spread {spread:.4g}: no sample could find it"
            ) from exc
        if planned > MOST_SAMPLE:
            raise ValueError(
                f"primary.minimum_effect {self.primary.minimum_effect!r} against the spread "
                f"{spread:.4g} needs {planned:.3g} outcomes per arm, more than {MOST_SAMPLE:,}; "
                "state a larger minimum effect"
            )
        return max(planned, self.minimum_sample)

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self.primary.name, *(g.name for g in self.guardrails))

    @property
    def treatments(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants if v.name != self.control)


def parse_experiment(text: str, *, source: str = "<text>") -> ExperimentSpec:
    """The design in ``text``.

    Raises:
        InputError: not YAML, or a field is wrong; the message names the source and field.
    """
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise InputError(
            f"{source}{where}: not valid YAML", hint="check the indentation and quoting"
        ) from exc
    try:
        return ExperimentSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise InputError(
            f"{source}: {problems}", hint="see docs/experiments.md for the fields"
        ) from exc


def load_experiment(path: Path) -> ExperimentSpec:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the experiment ({exc.strerror})") from exc
    return parse_experiment(text, source=str(path))
