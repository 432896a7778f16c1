"""Where the suite finds the benchmark and its own files in a checkout."""

from __future__ import annotations

from pathlib import Path

from accord.errors import ConfigurationError

CHECKOUT = Path(__file__).resolve().parents[4]
DEFAULT_DATASET = CHECKOUT.parent / "shared" / "datasets" / "tau_bench" / "retail"
"""The tau-bench retail folder beside the checkout (as build_tau_retail.py finds it)."""
DEFAULT_TASK_FILES = ("tasks_train.json", "tasks_dev.json")


def default_task_files(dataset: Path = DEFAULT_DATASET) -> list[Path]:
    """The train and dev task files of ``dataset``.

    Raises:
        ConfigurationError: one is missing; the message names the path.
    """
    files = [dataset / name for name in DEFAULT_TASK_FILES]
    for path in files:
        if not path.is_file():
            raise ConfigurationError(
                f"the tau-bench retail task file {path} does not exist",
                hint="put the tau-bench retail dataset there, or give task files with --tasks",
            )
    return files


def find_suite_files() -> Path:
    """``examples/retail-suite`` of the checkout (or of the current directory).

    Raises:
        ConfigurationError: it is not found.
    """
    for root in (Path.cwd(), CHECKOUT):
        candidate = root / "examples" / "retail-suite"
        if (candidate / "capabilities.yaml").is_file():
            return candidate
    raise ConfigurationError(
        "the suite's files (examples/retail-suite) were not found",
        hint="run the suite from the root of an Accord checkout",
    )
