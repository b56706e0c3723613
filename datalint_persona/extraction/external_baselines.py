"""What a vector's ΔP must beat on the external data, and the detection figures of both.

The baselines are built from exactly the pairs the vector was built from: ΔP at layer 0 along the
vector's own layer-0 direction (:func:`layer0_delta_p`, token embeddings: a bag of words in the
model's vocabulary) and TF-IDF + logistic regression (:func:`lexical_scorer`). :class:`Detection`
scores trait against clean samples with them and with the vector's own ΔP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from datalint_persona.extraction.external import auroc_with_interval, delta_matrix, paired_rate
from datalint_persona.types import RuleInfo, SampleScore

if TYPE_CHECKING:
    from datalint_persona.model.loading import LoadedModel
    from datalint_persona.persona.traits import TraitPair
    from datalint_persona.persona.vectors import PersonaVector


def training_pairs(trait: str, extra: Mapping[str, Sequence[TraitPair]]) -> list[TraitPair]:
    """Every pair a bundled vector was built and calibrated from: its trait file's pairs and the
    extra pairs it was extracted with (``vectors build --extra-pairs``)."""
    from datalint_persona._bundled import bundled
    from datalint_persona.errors import ConfigError
    from datalint_persona.persona.traits import load_trait

    shipped = Path(str(bundled("traits"))) / f"{trait}.yaml"
    # A trait that is not shipped has only the given pairs; a shipped file that is broken is an error.
    definition = load_trait(shipped) if shipped.is_file() else None
    own = [*definition.pairs, *definition.calibration] if definition else []
    pairs = [*own, *extra.get(trait, ())]
    if not pairs:
        raise ConfigError(
            f"No training pairs for the baselines of trait '{trait}' (it is not a shipped trait).",
            fix=f"give the pairs its vector was built from: --extra-pairs {trait}=FILE.",
        )
    return pairs


def lexical_scorer(pairs: Sequence[TraitPair]) -> Callable[[Sequence[str]], np.ndarray]:
    """TF-IDF + logistic regression (sklearn) trained on the pairs' answers (trait vs normal): the
    bag of words a vector must beat. Returns a function from answers to decision values."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    features = vectorizer.fit_transform([p.positive for p in pairs] + [p.negative for p in pairs])
    labels = [1] * len(pairs) + [0] * len(pairs)
    model = LogisticRegression(C=1.0, max_iter=2000).fit(features, labels)
    return lambda texts: np.asarray(model.decision_function(vectorizer.transform(list(texts))))


def layer0_delta_p(
    loaded: LoadedModel, vector: PersonaVector, samples: Sequence[SampleScore], *, batch_size: int = 16
) -> np.ndarray:
    """ΔP at layer 0 (the token embeddings: a bag of words in the model's own vocabulary) along the
    vector's own layer-0 direction, built from the same pairs: (a_0(x, y) - a_0(x, y')) . v-hat_0."""
    from datalint_persona.model.activations import iter_mean_activations
    from datalint_persona.model.chat import encode_pair

    unit = vector.vectors[0].astype(np.float64)
    unit /= np.linalg.norm(unit)
    encoded = [
        encode_pair(loaded.tokenizer, s.sample.prompt, text or " ", max_tokens=loaded.context_length)
        for s in samples
        for text in (s.sample.response, s.y_prime)
    ]
    projections = np.zeros(len(encoded))
    for batch, means in iter_mean_activations(loaded, encoded, [0], batch_size=batch_size):
        projections[batch] = means[0].cpu().double().numpy() @ unit
    return projections[0::2] - projections[1::2]


@dataclass(frozen=True)
class Detection:
    """Scores trait against clean samples: ΔP, the paper's ΔP (y′ alone as the reference), the raw
    projection a(x, y)·v̂, layer-0 ΔP and TF-IDF, each as an AUROC (and a paired rate)."""

    loaded: LoadedModel
    rules: list[RuleInfo]
    vectors: dict[str, PersonaVector]
    extra: dict[str, Sequence[TraitPair]]
    batch_size: int

    def figures(
        self, trait: str, bad: list[SampleScore], clean: list[SampleScore], paired: bool
    ) -> dict[str, Any]:
        """{score: {"auroc": ..., "paired": ...}} of ``bad`` (positives) against ``clean``."""
        out: dict[str, Any] = {"trait": trait, "n": [len(bad), len(clean)]}
        for name, (positive, negative) in self.scores(trait, bad, clean).items():
            out[name] = {"auroc": auroc_with_interval(positive, negative)}
            if paired:
                out[name]["paired"] = paired_rate(positive, negative)
        return out

    def scores(
        self, trait: str, bad: list[SampleScore], clean: list[SampleScore]
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each score of both groups, in the report's order."""
        score = lexical_scorer(training_pairs(trait, self.extra))
        column = [r.trait for r in self.rules].index(trait)

        def both(per_group: Callable[[list[SampleScore]], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
            return per_group(bad), per_group(clean)

        return {
            "delta_p": both(lambda group: delta_matrix(group, self.rules)[:, column]),
            "own_answer": both(
                lambda group: np.array(
                    [s.scores[column].projection_y - s.scores[column].projection_y_prime for s in group]
                )
            ),
            "raw": both(lambda group: np.array([s.scores[column].projection_y for s in group])),
            "layer0": both(
                lambda group: layer0_delta_p(
                    self.loaded, self.vectors[trait], group, batch_size=self.batch_size
                )
            ),
            "tfidf": both(lambda group: score([s.sample.response for s in group])),
        }
