"""The retail policy suite: tau-bench retail tasks driven through Accord's gateway.

See ``docs/retail-suite.md``. :class:`RetailSuite` runs the sandbox orders service seeded from
the tau-bench retail data and an Accord instance with the suite's journey, Cedar policies and
lawful basis; :func:`load_tasks` reads a task file; the report counts compliant actions
permitted, final states matched and violations refused.
"""

from accord.suites.retail._locations import (
    DEFAULT_DATASET,
    DEFAULT_TASK_FILES,
    default_task_files,
    find_suite_files,
)
from accord.suites.retail._oracle import ExpectedState, expected_state
from accord.suites.retail._runner import (
    ActionResult,
    RetailSuite,
    StateResult,
    SuiteReport,
    VariantResult,
)
from accord.suites.retail._tasks import ACTION_NAMES, Action, Task, TaskFileInvalid, load_tasks
from accord.suites.retail._variants import VIOLATION_KINDS, Variant, variants

__all__ = [
    "ACTION_NAMES",
    "DEFAULT_DATASET",
    "DEFAULT_TASK_FILES",
    "VIOLATION_KINDS",
    "Action",
    "ActionResult",
    "ExpectedState",
    "RetailSuite",
    "StateResult",
    "SuiteReport",
    "Task",
    "TaskFileInvalid",
    "Variant",
    "VariantResult",
    "default_task_files",
    "expected_state",
    "find_suite_files",
    "load_tasks",
    "variants",
]
