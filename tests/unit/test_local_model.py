"""The embedded intent model: deterministic, pickle-free, sklearn-faithful, and its evaluation."""

from __future__ import annotations

import io
import json
import math
from itertools import product
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from accord.agents._evaluation import (
    EvaluationReport,
    choose_threshold,
    evaluate,
    expected_calibration_error,
    in_scope_accuracy,
    read_labelled,
    risk_coverage,
)
from accord.agents._local import IntentModel, IntentPrediction, LocalProvider
from accord.agents._provider import AgentRequest, Provider, ToolResult
from accord.errors import AgentInvalid, InputError, ProviderFailed

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "agents"

_INTENTS = {
    "pay_bill": (
        ["please pay", "i want to pay", "can you settle", "go ahead and pay", "time to pay"],
        ["my electricity bill", "the water bill", "this month's phone bill", "my gas invoice"],
    ),
    "book_flight": (
        ["book me", "i need", "find me", "reserve", "get me"],
        [
            "a flight to paris",
            "a plane ticket to rome",
            "a seat on the morning flight",
            "a return flight",
        ],
    ),
    "play_music": (
        ["play", "put on", "start playing", "i want to hear", "queue up"],
        ["some jazz", "my workout playlist", "the latest album", "relaxing piano songs"],
    ),
}
_OUT_OF_SCOPE = [
    "what is the capital of mongolia",
    "tell me a joke about penguins",
    "how many legs does a spider have",
    "who won the football match yesterday",
    "what does photosynthesis mean",
    "recommend a good novel",
    "how tall is mount everest",
    "translate hello into german",
    "what year did the war end",
    "is a tomato a fruit",
]


def _synthetic() -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for intent, (verbs, objects) in _INTENTS.items():
        for verb, thing in product(verbs, objects):
            texts.append(f"{verb} {thing}")
            labels.append(intent)
    texts += _OUT_OF_SCOPE
    labels += ["oos"] * len(_OUT_OF_SCOPE)
    return texts, labels


@pytest.fixture(scope="module")
def model() -> IntentModel:
    texts, labels = _synthetic()
    return IntentModel.train(texts, labels, seed=7, source="synthetic", attribution="test data")


def _p(label: str, confidence: float) -> IntentPrediction:
    return IntentPrediction(label, confidence, ((label, confidence),))


def test_training_twice_gives_the_same_bytes(model: IntentModel) -> None:
    texts, labels = _synthetic()
    again = IntentModel.train(texts, labels, seed=7, source="synthetic", attribution="test data")
    assert again.to_bytes() == model.to_bytes()
    assert again.digest == model.digest


def test_another_seed_or_other_data_changes_the_recorded_digest(model: IntentModel) -> None:
    texts, labels = _synthetic()
    other = IntentModel.train([*texts, "pay my rent"], [*labels, "pay_bill"], seed=7)
    assert other.metadata["training"]["sha256"] != model.metadata["training"]["sha256"]
    assert other.digest != model.digest


def test_save_and_load_round_trip_predicts_the_same(model: IntentModel, tmp_path: Path) -> None:
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = IntentModel.load(path)
    probes = ["pay the phone bill", "book a flight to rome", "play jazz", "what is a quasar", ""]
    assert loaded.predict(probes) == model.predict(probes)
    assert loaded.digest == model.digest
    assert loaded.metadata == model.metadata


def test_the_file_holds_plain_arrays_only(model: IntentModel) -> None:
    with np.load(io.BytesIO(model.to_bytes()), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    assert {a.dtype.kind for a in arrays.values()} <= {"f", "u", "i"}
    assert b"pickle" not in model.to_bytes()
    metadata = json.loads(arrays["metadata"].tobytes())
    assert metadata["source"] == "synthetic"
    assert metadata["attribution"] == "test data"
    assert metadata["labels"] == ["book_flight", "oos", "pay_bill", "play_music"]
    assert metadata["training"]["examples"] == 70
    assert len(metadata["training"]["sha256"]) == 64
    assert metadata["format_version"] == 2


def test_features_and_scores_equal_sklearn(model: IntentModel) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    texts, labels = _synthetic()
    views = [
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True),
    ]
    train = sparse.hstack([v.fit_transform(texts) for v in views]).tocsr()
    probes = [*texts, "Pay  my BILL, please!", "zzz qqq", "a", "play   some\tjazz now"]
    expected = sparse.hstack([v.transform(probes) for v in views]).tocsr()
    assert abs(model.features(probes) - expected).max() < 1e-12
    svm = LinearSVC(C=1.0, random_state=7, max_iter=5000).fit(train, labels)
    assert tuple(svm.classes_) == model.labels
    np.testing.assert_allclose(
        model.decision_scores(probes), svm.decision_function(expected), atol=1e-10
    )
    loaded = IntentModel.from_bytes(model.to_bytes())
    np.testing.assert_allclose(
        loaded.decision_scores(probes), svm.decision_function(expected), atol=1e-10
    )


def test_in_scope_requests_are_recognised_with_confidence(model: IntentModel) -> None:
    predictions = model.predict(["please pay my water bill", "book me a flight to paris"])
    assert [p.label for p in predictions] == ["pay_bill", "book_flight"]
    assert all(0.5 < p.confidence <= 1.0 for p in predictions)
    assert all(len(p.top) == 3 and p.top[0] == (p.label, p.confidence) for p in predictions)


def test_unrelated_text_is_out_of_scope(model: IntentModel) -> None:
    probes = ["what is the capital of peru", "tell me a joke about cats", "how old is the moon"]
    assert [p.label for p in model.predict(probes)] == ["oos"] * 3
    assert all(p.confidence == 0.0 and p.top[0][0] == "oos" for p in model.predict(probes))
    (gibberish,) = model.predict(["xylophone quantum"])
    (clear,) = model.predict(["please pay my water bill"])
    assert gibberish.label == "oos" or gibberish.confidence < clear.confidence - 0.2
    (nothing,) = model.predict(["§§§ ¶¶"])
    assert nothing.label == "oos"
    assert nothing.confidence == 0.0
    assert model.predict([]) == []


def test_training_refuses_unusable_data() -> None:
    with pytest.raises(InputError, match="at least two labels"):
        IntentModel.train(["a b", "c d", "e f"], ["x", "x", "x"])
    with pytest.raises(InputError, match="fewer than 3 examples: y"):
        IntentModel.train(["a b", "c d", "e f", "g h"], ["x", "x", "x", "y"])
    with pytest.raises(InputError, match="labels"):
        IntentModel.train(["a b"], ["x", "y"])


def test_an_unknown_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AgentInvalid, match="cannot read the intent model"):
        IntentModel.from_bytes(b"not a zip")
    with pytest.raises(AgentInvalid, match="cannot read"):
        IntentModel.load(tmp_path / "missing.npz")
    buffer = io.BytesIO()
    np.savez(buffer, metadata=np.frombuffer(b'{"format": "other"}', dtype=np.uint8))
    with pytest.raises(AgentInvalid, match="not an Accord intent model"):
        IntentModel.from_bytes(buffer.getvalue())


def _request(**values: object) -> AgentRequest:
    return AgentRequest(
        agent="triage",
        version=1,
        provider="local",
        model="support-intents",
        instructions="",
        message="",
        input=dict(values),
        output_schema={},
    )


def _no_tools(name: str, arguments: dict[str, object]) -> ToolResult:
    raise AssertionError("the local provider asked for a tool")


def test_the_local_provider_answers_an_intent(model: IntentModel) -> None:
    provider = LocalProvider(model)
    assert isinstance(provider, Provider)
    assert provider.kind == "local"
    reply = provider.complete(_request(text="put on some jazz"), _no_tools)
    assert reply.output == {"intent": "play_music"}
    assert reply.confidence is not None and 0.0 < reply.confidence <= 1.0
    assert reply.usage.requests == 1
    assert reply.model == "support-intents"
    assert reply.detail["top"][0] == {"intent": "play_music", "confidence": reply.confidence}
    other = LocalProvider(model, input_field="utterance")
    assert other.complete(_request(utterance="pay my gas invoice"), _no_tools).output == {
        "intent": "pay_bill"
    }


def test_the_local_provider_needs_a_text_field(model: IntentModel) -> None:
    provider = LocalProvider(model)
    with pytest.raises(ProviderFailed, match="'text', which is missing") as missing:
        provider.complete(_request(utterance="hello"), _no_tools)
    assert missing.value.retryable is False
    with pytest.raises(ProviderFailed, match="is a int, not a string"):
        provider.complete(_request(text=42), _no_tools)


_PREDICTIONS = [
    _p("a", 0.95),
    _p("b", 0.90),
    _p("a", 0.90),
    _p("c", 0.60),
    _p("oos", 0.0),
    _p("b", 0.30),
]
_LABELS = ["a", "a", "a", "c", "b", "oos"]


def test_risk_coverage_arithmetic() -> None:
    rows = risk_coverage(_PREDICTIONS, _LABELS, [0.95, 0.9, 0.5, 0.0, 1.0])
    assert [(r.auto_executed, r.wrong) for r in rows] == [(1, 0), (3, 1), (4, 1), (5, 2), (0, 0)]
    assert rows[1].coverage == pytest.approx(3 / 6)
    assert rows[1].risk == pytest.approx(1 / 3)
    assert rows[3].coverage == pytest.approx(5 / 6)
    assert rows[3].risk == pytest.approx(2 / 5)
    assert rows[4].risk == 0.0
    assert in_scope_accuracy(_PREDICTIONS, _LABELS) == pytest.approx(3 / 5)


def test_reweighting_out_of_scope_items() -> None:
    predictions = [_p("a", 0.9), _p("a", 0.9), _p("a", 0.9), _p("b", 0.8)]
    labels = ["a", "a", "a", "oos"]
    (row,) = risk_coverage(predictions, labels, [0.5], oos_share=0.5)
    assert row.auto_executed == 4
    assert row.wrong == 1
    assert row.coverage == pytest.approx(1.0)
    assert row.risk == pytest.approx(0.5)
    with pytest.raises(InputError, match="both"):
        risk_coverage(predictions, ["a"] * 4, [0.5], oos_share=0.5)


def test_choose_threshold_takes_the_lowest_qualifying_confidence() -> None:
    assert choose_threshold(_PREDICTIONS, _LABELS, max_risk=0.0) == 0.95
    assert choose_threshold(_PREDICTIONS, _LABELS, max_risk=1 / 3) == 0.60
    assert choose_threshold(_PREDICTIONS, _LABELS, max_risk=0.4) == 0.30
    never = [_p("b", 0.9), _p("oos", 0.0)]
    assert choose_threshold(never, ["a", "a"], max_risk=0.01) == math.inf


def test_choose_threshold_keeps_ties_together() -> None:
    tied = [_p("a", 0.8), _p("b", 0.8)]
    assert choose_threshold(tied, ["a", "a"], max_risk=0.0) == math.inf
    assert choose_threshold(tied, ["a", "a"], max_risk=0.5) == 0.8


def test_choose_threshold_may_skip_a_bump_in_risk() -> None:
    bumpy = [_p("a", 0.9), _p("x", 0.8), _p("a", 0.7), _p("a", 0.6)]
    assert choose_threshold(bumpy, ["a", "a", "a", "a"], max_risk=0.25) == 0.6


def test_expected_calibration_error_by_hand() -> None:
    predictions = [_p("a", 0.95), _p("a", 0.95), _p("a", 0.55), _p("a", 0.55), _p("oos", 0.0)]
    labels = ["a", "b", "a", "a", "a"]
    assert expected_calibration_error(predictions, labels) == pytest.approx(0.5 * 0.45 + 0.5 * 0.45)


def test_the_report_prints_as_json() -> None:
    report = evaluate(_PREDICTIONS, _LABELS, threshold=math.inf, corpus="hand", curve=[0.5])
    assert isinstance(report, EvaluationReport)
    data = json.loads(report.to_json())
    assert data["threshold"] is None
    assert data["at_threshold"]["auto_executed"] == 0
    assert data["curve"][0]["auto_executed"] == 4
    assert data["out_of_scope_recall"] == 0.0


def test_read_labelled(tmp_path: Path) -> None:
    path = tmp_path / "intents.jsonl"
    path.write_text(
        '{"text": "hi", "label": "greet"}\n\n{"text": "weather?", "label": "oos", "note": 1}\n'
    )
    assert read_labelled(path) == [("hi", "greet"), ("weather?", "oos")]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json", "not a labelled example"),
        ('{"text": "hi"}', "label: Field required"),
        ('{"text": 3, "label": "x"}', "text: Input should be a valid string"),
        ('["hi", "x"]', "not a labelled example"),
        ('{"text": "  ", "label": "x"}', "empty text"),
    ],
)
def test_read_labelled_names_the_bad_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine", "label": "ok"}\n' + line + "\n")
    with pytest.raises(InputError, match=problem) as raised:
        read_labelled(path)
    assert f"{path}:2:" in str(raised.value)


def test_read_labelled_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read labelled examples"):
        read_labelled(tmp_path / "absent.jsonl")


def test_the_example_model_is_reproducible_from_its_data() -> None:
    examples = read_labelled(EXAMPLES / "data" / "support-intents.jsonl")
    committed = IntentModel.load(EXAMPLES / "models" / "support-intents.npz")
    retrained = IntentModel.train(
        [t for t, _ in examples],
        [label for _, label in examples],
        seed=committed.metadata["hyper_parameters"]["seed"],
        source="data/support-intents.jsonl",
        attribution="Written for Accord's examples (Apache-2.0)",
    )
    # the same data give the same model; numerical libraries may differ in the last bits
    texts = [t for t, _ in examples]
    assert retrained.labels == committed.labels
    np.testing.assert_allclose(
        retrained.decision_scores(texts), committed.decision_scores(texts), rtol=1e-9, atol=1e-9
    )
    assert [p.label for p in retrained.predict(texts)] == [
        p.label for p in committed.predict(texts)
    ]
    assert committed.metadata["source"] == "data/support-intents.jsonl"
