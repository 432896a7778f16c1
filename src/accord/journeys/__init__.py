"""The journey language: file format, YAML loader, Python builder, CEL expressions and lint."""

from accord.journeys._builder import FlowBuilder, JourneyBuilder
from accord.journeys._compiled import (
    CompiledJourney,
    FlowInfo,
    Node,
    compile_journey,
    journey_digest,
)
from accord.journeys._expressions import Expression, ExpressionSyntaxError, compile_expression
from accord.journeys._lint import branch_flow_id, branch_name, lint, map_flow_id
from accord.journeys._loader import (
    LoadedJourney,
    SourceMap,
    load_journey_file,
    load_journey_text,
)
from accord.journeys._spec import (
    BLOCK_KINDS,
    AnyBlock,
    ApproveBlock,
    CallBlock,
    ChoiceBlock,
    DecideBlock,
    EndBlock,
    EscalateBlock,
    JourneySpec,
    MapBlock,
    ParallelBlock,
    RetryPolicy,
    TaskBlock,
    WaitBlock,
    journey_json_schema,
)

__all__ = [
    "BLOCK_KINDS",
    "AnyBlock",
    "ApproveBlock",
    "CallBlock",
    "ChoiceBlock",
    "CompiledJourney",
    "DecideBlock",
    "EndBlock",
    "EscalateBlock",
    "Expression",
    "ExpressionSyntaxError",
    "FlowBuilder",
    "FlowInfo",
    "JourneyBuilder",
    "JourneySpec",
    "LoadedJourney",
    "MapBlock",
    "Node",
    "ParallelBlock",
    "RetryPolicy",
    "SourceMap",
    "TaskBlock",
    "WaitBlock",
    "branch_flow_id",
    "branch_name",
    "compile_expression",
    "compile_journey",
    "journey_digest",
    "journey_json_schema",
    "lint",
    "load_journey_file",
    "load_journey_text",
    "map_flow_id",
]
