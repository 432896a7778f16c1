"""The public surface is deliberate: adding or removing a name must change this test too."""

import accord


def test_public_api_is_pinned() -> None:
    assert sorted(accord.__all__) == sorted(
        [
            "Accord",
            "AccordError",
            "AgentSpec",
            "CallContext",
            "Capability",
            "CapabilityRegistry",
            "ErrorCode",
            "JourneyBuilder",
            "JourneySpec",
            "RunView",
            "Runtime",
            "Settings",
            "Worker",
            "__version__",
            "build",
            "load_agent_file",
            "load_journey_file",
            "load_journey_text",
        ]
    )
    for name in accord.__all__:
        assert getattr(accord, name) is not None
