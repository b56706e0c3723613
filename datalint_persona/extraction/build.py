"""The vector builder (``persona-lint vectors build``): extract, choose a layer, calibrate, save.

For each trait: extract a vector at every layer (contrastive pairs, or the paper's prompted and
judged answers), choose its layer (held-out effect size, or steering judged by an endpoint), then
calibrate its verdicts on the trait's held-out pairs and the clean data, and write
``TRAIT.safetensors`` + ``TRAIT.json``. The clean data runs once for every vector.

>>> options = BuildOptions(traits=("evil",), output_dir="vectors/out")
>>> options.method, options.select_layer, options.calibrate
('contrastive', 'effect-size', True)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datalint_persona.errors import ConfigError
from datalint_persona.settings import DEFAULT_CACHE_DIR, DEFAULT_MODEL

if TYPE_CHECKING:
    from datalint_persona.extraction.calibration import CleanProjections
    from datalint_persona.extraction.contrastive import DirectionKind
    from datalint_persona.extraction.judge import Judge
    from datalint_persona.extraction.prompted import PromptedOptions
    from datalint_persona.model.loading import LoadedModel
    from datalint_persona.persona.traits import TraitDefinition, TraitPair
    from datalint_persona.persona.vectors import PersonaVector
    from datalint_persona.types import Sample

# A status line shown while a step runs (the CLI passes its console's spinner).
Status = Callable[[str], AbstractContextManager[object]]


@dataclass(frozen=True)
class BuildOptions:
    """Everything ``vectors build`` takes; the defaults are the command's."""

    traits: tuple[str, ...]
    output_dir: str
    model: str = DEFAULT_MODEL
    method: str = "contrastive"  # or "prompted" (the paper's: judged own answers)
    direction: DirectionKind = "probe"  # contrastive: or "mean-difference"
    select_layer: str = "effect-size"  # or "steering" (needs the judge)
    calibrate: bool = True
    fpr: float = 0.05
    batch_size: int = 16
    cache_dir: str = DEFAULT_CACHE_DIR
    seed: int = 0
    device: str = "auto"  # a torch device, or "auto" (the GPU when torch sees one)
    clean_files: tuple[str, ...] = ()
    extra_pairs: tuple[str, ...] = ()  # "TRAIT=FILE" (contrastive only)
    judge_url: str | None = None
    judge_model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    max_instructions: int | None = None
    max_questions: int | None = None
    min_pairs: int = 10
    max_new_tokens: int = 128
    trait_threshold: float = 50.0
    coherence_threshold: float = 50.0
    backend: str = "transformers"
    steering_alpha: float = 2.0
    steering_layers: str | None = None  # "8,12,16" [default: every 4th layer from 4]

    def prompted_options(self) -> PromptedOptions:
        """The options of :func:`datalint_persona.extraction.prompted.build_prompted`."""
        from datalint_persona.extraction.prompted import PromptedOptions

        return PromptedOptions(
            max_instructions=self.max_instructions,
            max_questions=self.max_questions,
            min_pairs=self.min_pairs,
            trait_threshold=self.trait_threshold,
            coherence_threshold=self.coherence_threshold,
            max_new_tokens=self.max_new_tokens,
            backend=self.backend,
            seed=self.seed,
            batch_size=self.batch_size,
            cache_dir=self.cache_dir,
        )


@dataclass(frozen=True)
class WrittenVector:
    """One vector the builder wrote: its trait, tensor file and chosen layer."""

    trait: str
    path: Path
    chosen_layer: object


class SteeringLayersError(ValueError):
    """An invalid ``steering_layers`` list (the CLI reports it as a bad --steering-layers)."""


def pair_files(
    option: str, specs: Sequence[str], traits: list[str] | None = None
) -> dict[str, list[tuple[str, Any]]]:
    """``TRAIT=FILE`` option values as {trait: [(file name, pairs)]}; ``traits``: the allowed ones."""
    from datalint_persona.persona.traits import load_pair_file

    out: dict[str, list[tuple[str, Any]]] = {}
    for spec in specs:
        trait, _, file = spec.partition("=")
        if not trait or not file:
            raise ConfigError(
                f"{option} '{spec}': expected TRAIT=FILE.", fix=f"for example {option} evil=pairs.jsonl."
            )
        if traits is not None and trait not in traits:
            raise ConfigError(
                f"{option} '{spec}': '{trait}' is not one of the traits being built ({', '.join(traits)}).",
                fix="name a trait given with --trait.",
            )
        out.setdefault(trait, []).append((Path(file).name, load_pair_file(file)))
    return out


def candidate_layers(spec: str | None, num_layers: int) -> list[int]:
    """Parse a steering layer list ("8,12,16"); default every 4th steerable layer from 4.

    >>> candidate_layers(None, 13), candidate_layers("8, 4", 13)
    ([4, 8, 12], [4, 8])
    """
    if spec is None:
        return list(range(4, num_layers, 4))
    try:
        layers = sorted({int(part) for part in spec.split(",") if part.strip()})
    except ValueError:
        raise SteeringLayersError(f"'{spec}' is not a comma-separated list of layers") from None
    if not layers or layers[0] < 0 or layers[-1] >= num_layers:
        raise SteeringLayersError(f"layers must lie in 0..{num_layers - 1}")
    return layers


def build_vectors(options: BuildOptions, *, status: Status | None = None) -> Iterator[WrittenVector]:
    """Build, calibrate and save a vector for each of ``options.traits``, yielding each one written.

    Every option is checked (traits, extra pairs, the judge, the clean files) before the model loads.
    """
    from datalint_persona.model.loading import load_model, resolve_model
    from datalint_persona.persona.traits import load_trait, shipped_trait_path

    show = status or (lambda _text: nullcontext())
    definitions = [load_trait(shipped_trait_path(name)) for name in options.traits]
    extra = pair_files("--extra-pairs", options.extra_pairs, [d.trait for d in definitions])
    if extra and options.method != "contrastive":
        raise ConfigError("--extra-pairs works with --method contrastive only.", fix="drop --extra-pairs.")
    judge = _judge(options)
    clean_samples = load_clean_samples(options.clean_files)
    with show(f"Loading {options.model}"):
        loaded = load_model(resolve_model(options.model), device=options.device)
    built = []
    for definition in definitions:
        with show(f"{definition.trait}: extracting ({options.method})"):
            vector = _extract(loaded, definition, options, extra.get(definition.trait, ()), judge)
        if options.select_layer == "steering":
            assert judge is not None  # made by _judge for --select-layer steering
            vector = _steering_layer(loaded, vector, definition, judge, options, show)
        built.append((definition, vector))
    clean = _clean_projections(loaded, [v for _, v in built], clean_samples, options, show)
    for definition, vector in built:
        if options.calibrate and definition.calibration:
            vector = _calibrated(loaded, vector, definition, options, clean, show)
        path = vector.save(Path(options.output_dir) / definition.trait)
        yield WrittenVector(definition.trait, path, vector.metadata.get("chosen_layer"))


def _judge(options: BuildOptions) -> Judge | None:
    """The judge endpoint, for --method prompted and --select-layer steering only."""
    if options.method != "prompted" and options.select_layer != "steering":
        return None
    from datalint_persona.extraction.prompted import make_judge

    return make_judge(options.judge_url, options.judge_model, options.api_key_env)


def load_clean_samples(files: Sequence[str]) -> list[Sample]:
    """Every sample of the clean files (an invalid record is an error, as in screening)."""
    from datalint_persona.dataset.loaders import iter_dataset
    from datalint_persona.types import Sample

    return [s for s in iter_dataset(list(files)) if isinstance(s, Sample)] if files else []


def _extract(
    loaded: LoadedModel,
    definition: TraitDefinition,
    options: BuildOptions,
    extra_pairs: Sequence[tuple[str, Sequence[TraitPair]]],
    judge: Judge | None,
) -> PersonaVector:
    """The trait's vector at every layer, by ``options.method``."""
    if options.method == "contrastive":
        from datalint_persona.extraction.contrastive import build_contrastive

        return build_contrastive(
            loaded,
            definition,
            direction=options.direction,
            batch_size=options.batch_size,
            seed=options.seed,
            extra_pairs=extra_pairs,
        )
    from datalint_persona.extraction.prompted import build_prompted

    assert judge is not None  # made by _judge for --method prompted
    return build_prompted(loaded, definition, judge, options.prompted_options())


def _steering_layer(
    loaded: LoadedModel,
    vector: PersonaVector,
    definition: TraitDefinition,
    judge: Judge,
    options: BuildOptions,
    show: Status,
) -> PersonaVector:
    """``vector`` with the layer where steering with it most raises the judged trait score."""
    from datalint_persona.extraction.layer_selection import choose_steering_layer, steering_layer_scores

    candidates = candidate_layers(options.steering_layers, loaded.num_layers)
    with show(f"{definition.trait}: steering at layers {candidates}"):
        rows = steering_layer_scores(
            loaded,
            vector,
            definition,
            judge,
            candidates,
            alpha=options.steering_alpha,
            max_questions=options.max_questions,
            batch_size=options.batch_size,
        )
    return vector.with_metadata(
        chosen_layer=choose_steering_layer(rows),
        layer_selection=f"steering (alpha {options.steering_alpha}): max mean judged trait score",
        steering_scores=rows,
    )


def _clean_projections(
    loaded: LoadedModel,
    vectors: Sequence[PersonaVector],
    samples: Sequence[Sample],
    options: BuildOptions,
    show: Status,
) -> CleanProjections | None:
    """The clean data's projections for every vector, in one pass (None: no calibration or data)."""
    if not (options.calibrate and samples):
        return None
    from datalint_persona.extraction.calibration import clean_projections

    with show(f"Scoring {len(samples)} clean answers"):
        return clean_projections(
            loaded,
            vectors,
            samples,
            batch_size=options.batch_size,
            cache_dir=options.cache_dir,
            backend=options.backend,
            seed=options.seed,
        )


def _calibrated(
    loaded: LoadedModel,
    vector: PersonaVector,
    definition: TraitDefinition,
    options: BuildOptions,
    clean: CleanProjections | None,
    show: Status,
) -> PersonaVector:
    """``vector`` with its calibration on the trait's held-out pairs (and the clean data)."""
    from datalint_persona.extraction.calibration import calibrate_vector

    with show(f"{definition.trait}: calibrating on {len(definition.calibration)} pairs"):
        calibration = calibrate_vector(
            loaded,
            vector,
            definition.calibration,
            fpr=options.fpr,
            batch_size=options.batch_size,
            cache_dir=options.cache_dir,
            backend=options.backend,
            seed=options.seed,
            clean=clean,
        )
    return vector.with_metadata(calibration=calibration)
