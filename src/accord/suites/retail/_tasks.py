"""Task files: tau-bench retail tasks, read and checked before anything runs.

A task file is a JSON list of tasks, each ``{"user_id": ..., "actions": [{"name", "kwargs"}],
...}``. The suite drives the six actions that change an order; the read-only tools of the
benchmark (look-ups, ``calculate``, ``think``, ``transfer_to_human_agents``) change nothing and
are left out. Anything else is an error naming the task and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from accord.errors import InputError

ActionName = Literal[
    "cancel_pending_order",
    "modify_pending_order_address",
    "modify_pending_order_payment",
    "modify_pending_order_items",
    "return_delivered_order_items",
    "exchange_delivered_order_items",
]
ACTION_NAMES: tuple[ActionName, ...] = get_args(ActionName)

READ_ONLY_TOOLS = frozenset(
    {
        "find_user_id_by_email",
        "find_user_id_by_name_zip",
        "get_user_details",
        "get_order_details",
        "get_product_details",
        "list_all_product_types",
        "calculate",
        "think",
        "transfer_to_human_agents",
    }
)
"""Tools of the benchmark that change nothing: a task may name them, the suite skips them."""

OrderId = Annotated[str, Field(pattern=r"^#W[0-9]{7}$")]
ItemIds = Annotated[list[Annotated[str, Field(pattern=r"^[0-9]{10}$")]], Field(min_length=1)]
UserId = Annotated[str, Field(pattern=r"^[a-z]+_[a-z]+_[0-9]{4}$")]


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CancelArguments(_Arguments):
    order_id: OrderId
    reason: str


class AddressArguments(_Arguments):
    order_id: OrderId
    address1: str
    address2: str
    city: str
    state: str
    country: str
    zip: str


class PaymentArguments(_Arguments):
    order_id: OrderId
    payment_method_id: Annotated[str, Field(min_length=1)]


class ItemArguments(_Arguments):
    order_id: OrderId
    item_ids: ItemIds
    new_item_ids: ItemIds
    payment_method_id: Annotated[str, Field(min_length=1)]


class ReturnArguments(_Arguments):
    order_id: OrderId
    item_ids: ItemIds
    payment_method_id: Annotated[str, Field(min_length=1)]


ARGUMENTS: dict[ActionName, type[_Arguments]] = {
    "cancel_pending_order": CancelArguments,
    "modify_pending_order_address": AddressArguments,
    "modify_pending_order_payment": PaymentArguments,
    "modify_pending_order_items": ItemArguments,
    "return_delivered_order_items": ReturnArguments,
    "exchange_delivered_order_items": ItemArguments,
}


@dataclass(frozen=True, slots=True)
class Action:
    """One change a task asks for: the tool's name and its arguments (as the task gives them)."""

    name: ActionName
    kwargs: dict[str, Any]

    @property
    def order_id(self) -> str:
        return str(self.kwargs["order_id"])


@dataclass(frozen=True, slots=True)
class Task:
    """One task: whose conversation it is and the changes its ground truth makes, in order."""

    source: str
    index: int
    user_id: str
    actions: tuple[Action, ...]

    @property
    def label(self) -> str:
        """Where the task comes from, e.g. ``tasks_train.json#41``."""
        return f"{self.source}#{self.index}"


class TaskFileInvalid(InputError):
    """A task file cannot be read, or a task in it is malformed."""


def load_tasks(path: Path) -> list[Task]:
    """The tasks of ``path``.

    Raises:
        TaskFileInvalid: the file is missing or not JSON, or a task is malformed; the message
            names the file, the task's index and the field.
    """
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TaskFileInvalid(
            f"there is no task file {path}",
            hint="give a tau-bench retail task file with --tasks",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskFileInvalid(f"cannot read the task file {path}: {exc}") from exc
    except ValueError as exc:
        raise TaskFileInvalid(
            f"{path} is not JSON: {exc}", hint="a task file is a JSON list of tasks"
        ) from exc
    if not isinstance(raw, list):
        raise TaskFileInvalid(
            f"{path} holds a JSON {type(raw).__name__}, not a list of tasks",
            hint='each task is {"user_id": ..., "actions": [{"name": ..., "kwargs": {...}}]}',
        )
    return [_task(path, index, value) for index, value in enumerate(raw)]


def _task(path: Path, index: int, value: Any) -> Task:
    where = f"{path}: task {index}"
    if not isinstance(value, dict):
        raise TaskFileInvalid(f"{where} is a JSON {type(value).__name__}, not an object")
    user_id = value.get("user_id")
    try:
        _UserIdField.model_validate({"user_id": user_id})
    except ValidationError as exc:
        raise TaskFileInvalid(
            f"{where}: field user_id: {user_id!r} is not a shop user id",
            hint="a user id looks like omar_anderson_3203",
        ) from exc
    actions = value.get("actions")
    if not isinstance(actions, list):
        raise TaskFileInvalid(f"{where}: field actions must be a list of actions")
    found = []
    for position, action in enumerate(actions):
        here = f"{where}: actions[{position}]"
        if not isinstance(action, dict):
            raise TaskFileInvalid(f"{here} is not an object with name and kwargs")
        name = action.get("name")
        if name in READ_ONLY_TOOLS:
            continue
        if name not in ACTION_NAMES:
            raise TaskFileInvalid(
                f"{here}.name: {name!r} is not an action the suite drives",
                hint=f"the suite drives {', '.join(ACTION_NAMES)}",
            )
        kwargs = action.get("kwargs")
        if not isinstance(kwargs, dict):
            raise TaskFileInvalid(f"{here}.kwargs must be an object of the tool's arguments")
        try:
            ARGUMENTS[name].model_validate(kwargs)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"])
            raise TaskFileInvalid(
                f"{here}.kwargs.{field}: {error['msg']}",
                hint=f"see the arguments of {name} in the benchmark's tools.json",
            ) from exc
        found.append(Action(name, dict(kwargs)))
    return Task(Path(path).name, index, str(user_id), tuple(found))


class _UserIdField(BaseModel):
    model_config = ConfigDict(strict=True)

    user_id: UserId
