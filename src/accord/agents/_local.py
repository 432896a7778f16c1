"""The embedded local intent model and the provider that serves it.

:class:`IntentModel` is a linear classifier over two TF-IDF views of an utterance (word 1-2-grams
and within-word character 2-5-grams), trained with scikit-learn's ``LinearSVC`` one-vs-rest and an
explicit out-of-scope class when the training data has one. Its confidence is a small logistic
regression over six facts of a prediction: the margin over the best rival, the label's own score,
the out-of-scope class's score, the share of the text's words never seen in training, how rare its
rarest word is, and how many words it has. The calibrator is fit on out-of-fold scores and
fold-local vocabularies of the training data, out-of-scope examples included as negatives, so it
reads as the probability that the predicted in-scope label is right.

A trained model is only arrays and JSON metadata in a ``.npz`` file (no pickle): prediction
rebuilds the TF-IDF transform and the linear scoring with numpy and scipy from the stored
vocabulary, idf and coefficients, so loading a model never runs code from the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import optimize, sparse, special

from accord.agents._provider import AgentReply, AgentRequest, ProviderKind, ToolRunner, Usage
from accord.errors import AgentInvalid, InputError, ProviderFailed

__all__ = ["OUT_OF_SCOPE", "IntentModel", "IntentPrediction", "LocalProvider"]

OUT_OF_SCOPE = "oos"
"""The label a prediction carries when the model says the text is out of scope."""

FORMAT_VERSION = 2
_FORMAT_NAME = "accord-intent-model"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_WHITE_SPACES = re.compile(r"\s\s+")
_TOP = 3

Analyzer = Literal["word", "char_wb"]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class IntentPrediction:
    """One prediction of the intent model.

    Attributes:
        label: the predicted intent, or ``"oos"`` when the model says the text is out of scope.
        confidence: calibrated probability that ``label`` is right; 0.0 when out of scope.
        top: the three best labels (``"oos"`` included) with the calibrated probability of each.
    """

    label: str
    confidence: float
    top: tuple[tuple[str, float], ...]

    @property
    def in_scope(self) -> bool:
        """Whether the model named an intent rather than out of scope."""
        return self.label != OUT_OF_SCOPE


@dataclass(frozen=True, slots=True)
class _TextView:
    """One TF-IDF view: the analyzer, its n-gram range, vocabulary (column order) and idf."""

    analyzer: Analyzer
    ngram_range: tuple[int, int]
    min_df: int
    terms: tuple[str, ...]
    idf: FloatArray

    @property
    def index(self) -> dict[str, int]:
        return {term: i for i, term in enumerate(self.terms)}

    def grams(self, text: str) -> list[str]:
        lower, upper = self.ngram_range
        text = text.lower()
        grams: list[str] = []
        if self.analyzer == "word":
            tokens = _TOKEN.findall(text)
            for n in range(lower, min(upper, len(tokens)) + 1):
                grams.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
            return grams
        for word in _WHITE_SPACES.sub(" ", text).split():
            padded = f" {word} "
            for n in range(lower, upper + 1):
                if len(padded) <= n:
                    grams.append(padded)
                    break
                grams.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
        return grams

    def transform(self, texts: Sequence[str], index: dict[str, int]) -> sparse.csr_matrix:
        indptr = [0]
        columns: list[int] = []
        counts: list[float] = []
        for text in texts:
            found = Counter(i for gram in self.grams(text) if (i := index.get(gram)) is not None)
            for column in sorted(found):
                columns.append(column)
                counts.append(found[column])
            indptr.append(len(columns))
        data = np.asarray(counts, dtype=np.float64)
        data = (np.log(data) + 1.0) * self.idf[np.asarray(columns, dtype=np.int64)]
        matrix = sparse.csr_matrix(
            (data, np.asarray(columns, dtype=np.int64), np.asarray(indptr, dtype=np.int64)),
            shape=(len(texts), len(self.terms)),
        )
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        norms[norms == 0.0] = 1.0
        return sparse.csr_matrix(sparse.diags(1.0 / norms) @ matrix)

    def describe(self) -> dict[str, Any]:
        return {
            "analyzer": self.analyzer,
            "ngram_range": list(self.ngram_range),
            "min_df": self.min_df,
            "lowercase": True,
            "token_pattern": _TOKEN.pattern,
            "sublinear_tf": True,
            "norm": "l2",
            "terms": list(self.terms),
        }


_VIEWS: tuple[tuple[Analyzer, tuple[int, int], int], ...] = (
    ("word", (1, 2), 1),
    ("char_wb", (2, 5), 2),
)


def _fit_view(
    analyzer: Analyzer, ngram_range: tuple[int, int], min_df: int, texts: Sequence[str]
) -> _TextView:
    from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: PLC0415 - training only

    vectoriser = TfidfVectorizer(
        analyzer=analyzer,
        ngram_range=ngram_range,
        min_df=min_df,
        sublinear_tf=True,
        dtype=np.float64,
    )
    vectoriser.fit(texts)
    vocabulary: dict[str, int] = vectoriser.vocabulary_
    terms = tuple(sorted(vocabulary, key=vocabulary.__getitem__))
    return _TextView(
        analyzer, ngram_range, min_df, terms, np.asarray(vectoriser.idf_, dtype=np.float64)
    )


_CONFIDENCE_FEATURES = (
    "margin",
    "score",
    "oos_score",
    "unseen_word_share",
    "log1p_rarest_word_df",
    "log1p_words",
)
_CORRECTION_PENALTY = 100.0
"""L2 strength on the calibrator's correction: small training sets keep plain Platt scaling."""


def _word_facts(tokens: Sequence[Sequence[str]], df: dict[str, int]) -> FloatArray:
    """Per text: share of words unseen in training, log1p of the rarest word's df, log1p(words)."""
    facts = np.zeros((len(tokens), 3))
    for row, words in enumerate(tokens):
        if not words:
            facts[row] = (1.0, 0.0, 0.0)
            continue
        seen = [df.get(word, 0) for word in words]
        facts[row] = (
            sum(n == 0 for n in seen) / len(seen),
            math.log1p(min(seen)),
            math.log1p(len(seen)),
        )
    return facts


def _confidence_inputs(
    scores: FloatArray, order: npt.NDArray[np.int64], oos: int, facts: FloatArray
) -> FloatArray:
    """Calibrator inputs, shape (texts, ranks, features), for the labels in ``order``'s columns."""
    ranked = np.take_along_axis(scores, order, axis=1)
    rivals = np.repeat(ranked[:, :1], ranked.shape[1], axis=1)
    rivals[:, 0] = ranked[:, 1]
    oos_score = scores[:, oos] if oos >= 0 else np.zeros(len(scores))
    per_text = np.column_stack([oos_score, facts])
    return np.concatenate(
        [
            np.stack([ranked - rivals, ranked], axis=2),
            np.repeat(per_text[:, None, :], ranked.shape[1], axis=1),
        ],
        axis=2,
    )


@dataclass(frozen=True, slots=True)
class _Calibrator:
    """``sigmoid(weights . (inputs - mean) / scale + intercept)``: a logistic regression."""

    mean: FloatArray
    scale: FloatArray
    weights: FloatArray
    intercept: float

    def __call__(self, inputs: FloatArray) -> FloatArray:
        z = ((inputs - self.mean) / self.scale) @ self.weights + self.intercept
        result: FloatArray = special.expit(z)
        return result

    def describe(self) -> dict[str, Any]:
        return {
            "features": list(_CONFIDENCE_FEATURES),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "intercept": self.intercept,
        }


def _smoothed_targets(correct: npt.NDArray[np.bool_]) -> FloatArray:
    """Platt's targets: ``(n+ + 1) / (n+ + 2)`` for right, ``1 / (n- + 2)`` for wrong."""
    positives = int(correct.sum())
    negatives = len(correct) - positives
    targets: FloatArray = np.where(
        correct, (positives + 1.0) / (positives + 2.0), 1.0 / (negatives + 2.0)
    )
    return targets


def _fit_logistic(
    inputs: FloatArray, targets: FloatArray, offset: FloatArray, *, penalty: float
) -> FloatArray:
    """Weights then intercept of ``sigmoid(inputs . w + b + offset)``, L2 ``penalty`` on ``w``."""

    def loss(params: FloatArray) -> tuple[float, FloatArray]:
        weights, intercept = params[:-1], params[-1]
        z = inputs @ weights + intercept + offset
        value = float(np.sum(np.logaddexp(0.0, z) - targets * z))
        value += 0.5 * penalty * float(weights @ weights)
        residual = special.expit(z) - targets
        return value, np.append(inputs.T @ residual + penalty * weights, residual.sum())

    start = np.zeros(inputs.shape[1] + 1)
    result = optimize.minimize(loss, start, jac=True, method="L-BFGS-B")
    return np.asarray(result.x, dtype=np.float64)


def _fit_calibrator(inputs: FloatArray, correct: npt.NDArray[np.bool_]) -> _Calibrator:
    """Platt scaling of the margin, then a regularised logistic correction from all the inputs.

    Both fits see Platt's two pseudo-examples (an average text with margin zero, once right and
    once wrong) and his smoothed targets. The correction is shrunk towards zero, so with few
    wrong out-of-fold predictions the calibrator stays the margin's Platt scaling.
    """
    mean = inputs.mean(axis=0)
    scale = inputs.std(axis=0)
    scale[scale == 0.0] = 1.0
    pseudo = np.repeat(mean[None, :], 2, axis=0)
    pseudo[:, 0] = 0.0
    inputs = np.vstack([inputs, pseudo])
    targets = _smoothed_targets(np.concatenate([correct, np.array([True, False])]))
    margins = inputs[:, 0]
    platt = _fit_logistic(margins[:, None], targets, np.zeros(len(margins)), penalty=0.0)
    correction = _fit_logistic(
        (inputs - mean) / scale, targets, platt[0] * margins + platt[1], penalty=_CORRECTION_PENALTY
    )
    weights = correction[:-1].copy()
    weights[0] += platt[0] * scale[0]
    intercept = float(correction[-1] + platt[1] + platt[0] * mean[0])
    return _Calibrator(mean, scale, weights, intercept)


def _scores(features: sparse.csr_matrix, coef: FloatArray, intercept: FloatArray) -> FloatArray:
    result: FloatArray = np.asarray(features @ coef.T) + intercept
    return result


def _ranking(scores: FloatArray) -> npt.NDArray[np.int64]:
    order: npt.NDArray[np.int64] = np.argsort(-scores, axis=1, kind="stable")
    return order


def _tokens(texts: Sequence[str]) -> list[list[str]]:
    return [_TOKEN.findall(text.lower()) for text in texts]


def _document_frequencies(tokens: Sequence[Sequence[str]]) -> dict[str, int]:
    return dict(Counter(word for words in tokens for word in set(words)))


def _training_digest(texts: Sequence[str], labels: Sequence[str]) -> str:
    lines = (json.dumps([t, lab], ensure_ascii=False) for t, lab in zip(texts, labels, strict=True))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _npy(array: npt.NDArray[Any]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


class IntentModel:
    """A trained intent classifier that knows when it does not know.

    Build one with :meth:`train` or :meth:`load`; the constructor is internal.
    """

    def __init__(
        self,
        *,
        labels: tuple[str, ...],
        views: tuple[_TextView, ...],
        coef: FloatArray,
        intercept: FloatArray,
        word_df: npt.NDArray[np.int64],
        calibration: _Calibrator,
        metadata: dict[str, Any],
    ) -> None:
        self._labels = labels
        self._views = views
        self._indexes = tuple(view.index for view in views)
        self._coef = coef
        self._intercept = intercept
        self._word_df = word_df
        self._df = {term: int(n) for term, n in zip(views[0].terms, word_df, strict=True) if n > 0}
        self._oos = labels.index(OUT_OF_SCOPE) if OUT_OF_SCOPE in labels else -1
        self._calibration = calibration
        self._metadata = metadata
        self._bytes: bytes | None = None

    @classmethod
    def train(
        cls,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        oos_label: str = OUT_OF_SCOPE,
        seed: int = 0,
        source: str = "",
        attribution: str = "",
        c: float = 1.0,
        folds: int = 3,
    ) -> IntentModel:
        """Train a model on labelled utterances. The same data and seed give the same bytes.

        Args:
            texts: the utterances.
            labels: one intent per utterance; ``oos_label`` marks out-of-scope examples, which
                become an explicit class predicted as ``"oos"``.
            oos_label: the label of out-of-scope examples in ``labels``.
            seed: seeds the fold split and the solver.
            source: where the training data came from, recorded in the metadata.
            attribution: the data's licence attribution, recorded in the metadata.
            c: the SVM's regularisation parameter.
            folds: out-of-fold splits used to fit the confidence calibrator.

        Raises:
            InputError: the data is empty, lengths differ, there are fewer than two labels, or
                a label has fewer examples than ``folds``.
        """
        from sklearn.model_selection import StratifiedKFold  # noqa: PLC0415 - training only

        texts, labels = list(texts), [OUT_OF_SCOPE if lab == oos_label else lab for lab in labels]
        if len(texts) != len(labels):
            raise InputError(
                f"{len(texts)} texts but {len(labels)} labels; give one label per text"
            )
        counts = Counter(labels)
        if len(counts) < 2:
            raise InputError(
                "training needs at least two labels", hint="add examples of another intent"
            )
        sparse_labels = sorted(lab for lab, n in counts.items() if n < folds)
        if sparse_labels:
            raise InputError(
                f"labels with fewer than {folds} examples: {', '.join(sparse_labels)}",
                hint=f"give every label at least {folds} examples",
            )
        classes = tuple(sorted(counts))
        y = np.searchsorted(np.asarray(classes), np.asarray(labels))
        views = tuple(_fit_view(a, r, m, texts) for a, r, m in _VIEWS)
        indexes = tuple(view.index for view in views)
        features = sparse.hstack(
            [v.transform(texts, ix) for v, ix in zip(views, indexes, strict=True)]
        ).tocsr()

        oos = classes.index(OUT_OF_SCOPE) if OUT_OF_SCOPE in classes else -1
        tokens = _tokens(texts)
        inputs = np.zeros((len(texts), len(_CONFIDENCE_FEATURES)))
        predicted = np.zeros(len(texts), dtype=np.int64)
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for fit_rows, held_rows in splitter.split(np.zeros(len(y)), y):
            coef, intercept = _fit_svm(
                features[fit_rows], y[fit_rows], len(classes), c=c, seed=seed
            )
            scores = _scores(features[held_rows], coef, intercept)
            order = _ranking(scores)[:, :2]
            fold_df = _document_frequencies([tokens[i] for i in fit_rows])
            facts = _word_facts([tokens[i] for i in held_rows], fold_df)
            inputs[held_rows] = _confidence_inputs(scores, order, oos, facts)[:, 0]
            predicted[held_rows] = order[:, 0]
        in_scope = predicted != oos
        calibration = _fit_calibrator(inputs[in_scope], (predicted == y)[in_scope])
        coef, intercept = _fit_svm(features, y, len(classes), c=c, seed=seed)
        df = _document_frequencies(tokens)
        word_df = np.asarray([df.get(term, 0) for term in views[0].terms], dtype=np.int64)
        metadata: dict[str, Any] = {
            "format": _FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "labels": list(classes),
            "out_of_scope": OUT_OF_SCOPE,
            "method": "tfidf(word 1-2, char_wb 2-5) + LinearSVC one-vs-rest + logistic "
            "calibrator(margin, score, oos score, unseen words, rarest word, length)",
            "hyper_parameters": {"c": c, "folds": folds, "seed": seed, "loss": "squared_hinge"},
            "calibration": calibration.describe(),
            "views": [view.describe() for view in views],
            "training": {
                "sha256": _training_digest(texts, labels),
                "examples": len(texts),
                "per_label": dict(sorted(counts.items())),
                "out_of_fold_accuracy": float((predicted == y).mean()),
            },
            "source": source,
            "attribution": attribution,
        }
        return cls(
            labels=classes,
            views=views,
            coef=coef,
            intercept=intercept,
            word_df=word_df,
            calibration=calibration,
            metadata=metadata,
        )

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels the model can predict, ``"oos"`` included if it was trained with it."""
        return self._labels

    @property
    def metadata(self) -> dict[str, Any]:
        """Provenance and parameters: labels, views, hyper-parameters, training digest, source."""
        return json.loads(json.dumps(self._metadata))  # type: ignore[no-any-return]

    @property
    def digest(self) -> str:
        """SHA-256 of the saved bytes."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def features(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """The TF-IDF features of ``texts``, both views side by side."""
        blocks = [
            view.transform(texts, ix) for view, ix in zip(self._views, self._indexes, strict=True)
        ]
        return sparse.hstack(blocks).tocsr()

    def decision_scores(self, texts: Sequence[str]) -> FloatArray:
        """The raw linear score of every label (columns in :attr:`labels` order)."""
        return _scores(self.features(texts), self._coef, self._intercept)

    def predict(self, texts: Sequence[str]) -> list[IntentPrediction]:
        """Predict the intent of each text, with calibrated confidence."""
        if not texts:
            return []
        features = self.features(texts)
        scores = _scores(features, self._coef, self._intercept)
        empty = np.diff(features.indptr) == 0
        order = _ranking(scores)
        facts = _word_facts(_tokens(texts), self._df)
        probabilities = self._calibration(
            _confidence_inputs(scores, order[:, :_TOP], self._oos, facts)
        )
        predictions = []
        for row in range(len(scores)):
            top = tuple(
                (self._labels[order[row, k]], float(probabilities[row, k]))
                for k in range(min(_TOP, len(self._labels)))
            )
            label = top[0][0]
            if empty[row] or label == OUT_OF_SCOPE:
                predictions.append(IntentPrediction(OUT_OF_SCOPE, 0.0, top))
            else:
                predictions.append(IntentPrediction(label, top[0][1], top))
        return predictions

    def to_bytes(self) -> bytes:
        """The model as a ``.npz`` archive: numeric arrays and a UTF-8 JSON ``metadata`` array."""
        if self._bytes is None:
            members: dict[str, npt.NDArray[Any]] = {
                "metadata": np.frombuffer(
                    json.dumps(self._metadata, sort_keys=True, ensure_ascii=False).encode(),
                    dtype=np.uint8,
                ),
                "coef": self._coef,
                "intercept": self._intercept,
                "word_df": self._word_df,
            }
            for i, view in enumerate(self._views):
                members[f"idf_{i}"] = view.idf
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for name, array in members.items():
                    info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = 0o644 << 16
                    archive.writestr(info, _npy(array))
            self._bytes = buffer.getvalue()
        return self._bytes

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str = "<bytes>") -> IntentModel:
        """Rebuild a model from :meth:`to_bytes` output. Never unpickles.

        Raises:
            AgentInvalid: the bytes are not an intent model of a known format version.
        """
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
            metadata = json.loads(arrays["metadata"].tobytes().decode())
            if (
                metadata.get("format") != _FORMAT_NAME
                or metadata.get("format_version") != FORMAT_VERSION
            ):
                raise AgentInvalid(
                    f"{name}: not an Accord intent model of format version {FORMAT_VERSION}",
                    hint="retrain the model with this version of Accord",
                )
            views = tuple(
                _TextView(
                    spec["analyzer"],
                    (int(spec["ngram_range"][0]), int(spec["ngram_range"][1])),
                    int(spec["min_df"]),
                    tuple(spec["terms"]),
                    np.asarray(arrays[f"idf_{i}"], dtype=np.float64),
                )
                for i, spec in enumerate(metadata["views"])
            )
            spec = metadata["calibration"]
            if tuple(spec["features"]) != _CONFIDENCE_FEATURES:
                raise AgentInvalid(
                    f"{name}: the model's calibrator reads unknown features {spec['features']}",
                    hint="retrain the model with this version of Accord",
                )
            calibration = _Calibrator(
                np.asarray(spec["mean"], dtype=np.float64),
                np.asarray(spec["scale"], dtype=np.float64),
                np.asarray(spec["weights"], dtype=np.float64),
                float(spec["intercept"]),
            )
            model = cls(
                labels=tuple(metadata["labels"]),
                views=views,
                coef=np.asarray(arrays["coef"], dtype=np.float64),
                intercept=np.asarray(arrays["intercept"], dtype=np.float64),
                word_df=np.asarray(arrays["word_df"], dtype=np.int64),
                calibration=calibration,
                metadata=metadata,
            )
        except AgentInvalid:
            raise
        except (
            OSError,
            ValueError,
            KeyError,
            TypeError,
            UnicodeDecodeError,
            zipfile.BadZipFile,
        ) as error:
            raise AgentInvalid(
                f"{name}: cannot read the intent model ({error})",
                hint="point at a .npz written by IntentModel.save",
            ) from error
        width = sum(len(view.terms) for view in views)
        if model._coef.shape != (len(model._labels), width) or model._intercept.shape != (
            len(model._labels),
        ):
            raise AgentInvalid(
                f"{name}: the model's arrays do not match its metadata", hint="retrain the model"
            )
        model._bytes = data
        return model

    def save(self, path: str | Path) -> None:
        """Write the model to ``path`` (conventionally ``*.npz``)."""
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> IntentModel:
        """Read a model written by :meth:`save`.

        Raises:
            AgentInvalid: the file is missing or is not an intent model.
        """
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise AgentInvalid(
                f"{path}: cannot read the intent model ({error.strerror})"
            ) from error
        return cls.from_bytes(data, name=str(path))


def _fit_svm(
    features: sparse.csr_matrix, y: npt.NDArray[np.int64], n_classes: int, *, c: float, seed: int
) -> tuple[FloatArray, FloatArray]:
    from sklearn.svm import LinearSVC  # noqa: PLC0415 - training only

    present = np.unique(y)
    svm = LinearSVC(C=c, random_state=seed, max_iter=5000)
    svm.fit(features, y)
    raw_coef = np.asarray(svm.coef_, dtype=np.float64)
    raw_intercept = np.asarray(svm.intercept_, dtype=np.float64)
    if len(present) == 2:
        raw_coef = np.vstack([-raw_coef, raw_coef])
        raw_intercept = np.concatenate([-raw_intercept, raw_intercept])
    coef = np.zeros((n_classes, features.shape[1]))
    intercept = np.full(n_classes, -math.inf)
    coef[present] = raw_coef
    intercept[present] = raw_intercept
    return coef, intercept


class LocalProvider:
    """The embedded provider: answers ``{"intent": label}`` from an :class:`IntentModel`.

    It reads the utterance from ``request.input[input_field]`` and never asks for tools.
    """

    kind: ProviderKind = "local"

    def __init__(self, model: IntentModel, *, input_field: str = "text") -> None:
        self._model = model
        self._input_field = input_field

    def complete(self, request: AgentRequest, tools: ToolRunner) -> AgentReply:
        """Classify the request's input text.

        Raises:
            ProviderFailed: the input has no string field ``input_field`` (not retryable).
        """
        text = request.input.get(self._input_field)
        if not isinstance(text, str):
            found = "is missing" if text is None else f"is a {type(text).__name__}, not a string"
            raise ProviderFailed(
                f"agent {request.agent!r}: the local model reads input field "
                f"{self._input_field!r}, which {found}",
                hint=f"map the utterance to the agent's input field {self._input_field!r}",
                retryable=False,
            )
        (prediction,) = self._model.predict([text])
        return AgentReply(
            output={"intent": prediction.label},
            confidence=prediction.confidence,
            usage=Usage(requests=1),
            model=request.model,
            detail={"top": [{"intent": label, "confidence": p} for label, p in prediction.top]},
        )
