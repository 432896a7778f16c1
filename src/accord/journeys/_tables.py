"""Decision tables: unary-test cells compiled to CEL, and the hit policies that combine rules."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from accord.core import canonical_dumps
from accord.errors import DecisionError
from accord.journeys._expressions import Expression, compile_expression
from accord.journeys._spec import DecideBlock, Rule

_COMPARISON = re.compile(r"^(<=|>=|==|!=|<|>)\s*(.+)$", re.DOTALL)
_RANGE = re.compile(r"^([\[(\]])\s*(.+?)\s*\.\.\s*(.+?)\s*([\])\[])$", re.DOTALL)


def compile_cell(column: str, cell: Any) -> Expression | None:
    """Compile one cell of a rule into a boolean CEL test on ``column``; ``None`` matches anything.

    Accepted forms: ``-`` (any), ``> 100`` and other comparisons, ``[1..10]`` / ``(0..5]``
    ranges, ``in ["DE", "FR"]``, an expression using ``?`` for the value (``? % 2 == 0``), a CEL
    literal (``"gold"``, ``true``), or a YAML number/boolean/list for equality or membership.
    """
    if cell is None or (isinstance(cell, str) and cell.strip() in ("-", "")):
        return None
    if not isinstance(cell, str):
        if isinstance(cell, list):
            return compile_expression(f"{column} in {canonical_dumps(cell)}")
        return compile_expression(f"{column} == {canonical_dumps(cell)}")
    text = cell.strip()
    if "?" in text:
        return compile_expression(text.replace("?", column))
    if match := _COMPARISON.match(text):
        return compile_expression(f"{column} {match.group(1)} ({match.group(2)})")
    if match := _RANGE.match(text):
        low_op = ">=" if match.group(1) == "[" else ">"
        high_op = "<=" if match.group(4) == "]" else "<"
        return compile_expression(
            f"{column} {low_op} ({match.group(2)}) && {column} {high_op} ({match.group(3)})"
        )
    if text.startswith("in "):
        return compile_expression(f"{column} {text}")
    if text.startswith("not(") and text.endswith(")"):
        inner = compile_cell(column, text[4:-1])
        return None if inner is None else compile_expression(f"!({inner.source})")
    return compile_expression(f"{column} == ({text})")


@dataclass(frozen=True, slots=True)
class CompiledTable:
    """A decide block with its input columns and rule cells compiled."""

    block: DecideBlock
    inputs: Mapping[str, Expression]
    rules: Sequence[tuple[Rule, Mapping[str, Expression]]]

    def evaluate(self, variables: Mapping[str, Any]) -> tuple[Any, list[int]]:
        """Evaluate the table; returns the result and the 0-based indexes of matched rules.

        Raises:
            DecisionError: no rule matched and there is no default, or the hit policy is broken.
        """
        values = {name: expr.evaluate(variables) for name, expr in self.inputs.items()}
        matched = [
            i
            for i, (_, cells) in enumerate(self.rules)
            if all(test.evaluate(values) is True for test in cells.values())
        ]
        policy = self.block.hit_policy
        rows = [dict(self.rules[i][0].then) for i in matched]
        if not matched:
            if policy in ("collect", "rule_order"):
                return [], []
            if self.block.default is not None:
                return dict(self.block.default), []
            raise DecisionError(
                f"decision table {self.block.id!r} matched no rule for {values}",
                hint="add a rule for these values or a 'default:'",
            )
        if policy == "unique":
            if len(matched) > 1:
                raise DecisionError(
                    f"decision table {self.block.id!r} (hit policy unique) matched rules "
                    f"{[i + 1 for i in matched]} for {values}",
                    hint="make the rules exclusive, or choose hit_policy first/priority/collect",
                )
            return rows[0], matched
        if policy == "first":
            return rows[0], matched[:1]
        if policy == "priority":
            best = max(matched, key=lambda i: (self.rules[i][0].priority, -i))
            return dict(self.rules[best][0].then), [best]
        if policy == "any":
            if any(row != rows[0] for row in rows):
                raise DecisionError(
                    f"decision table {self.block.id!r} (hit policy any) matched rules with "
                    f"different outputs: {[i + 1 for i in matched]}",
                    hint="rules that overlap must give the same output under hit policy 'any'",
                )
            return rows[0], matched
        return rows, matched


def compile_table(block: DecideBlock) -> CompiledTable:
    inputs = {name: compile_expression(source) for name, source in block.inputs.items()}
    rules = []
    for rule in block.rules:
        cells = {}
        for column, cell in rule.when.items():
            test = compile_cell(column, cell)
            if test is not None:
                cells[column] = test
        rules.append((rule, cells))
    return CompiledTable(block, inputs, rules)
