"""Sample and dataset verdicts (``verdicts.decide``) against independent computations, and the
properties a CI gate needs: the model's own answers are never flagged, small files get no
verdict, a file's own style is not evidence, and clean data is flagged at no more than the FDR."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import false_discovery_control, norm, t, ttest_1samp

from datalint_persona.stats import holm
from datalint_persona.types import RuleInfo, Sample, SampleScore, TraitScore
from datalint_persona.verdicts.datasets import MIN_DATASET_SAMPLES
from datalint_persona.verdicts.decide import annotate, decide
from datalint_persona.verdicts.findings import dataset_findings, sample_findings
from datalint_persona.verdicts.samples import MIN_OWN_FILE

NULL = {"df": 6.0, "loc": -1.0, "scale": 2.0}
GAP = 8.0


def rule(trait: str = "evil", **values: object) -> RuleInfo:
    settings: dict[str, object] = {
        "calibration_mean": NULL["loc"],
        "calibration_std": NULL["scale"],
        "null_df": NULL["df"],
        "gap": GAP,
        "margin": 0.25,
        **values,
    }
    settings = {"sample_threshold": None, "dataset_threshold": None, **settings}
    return RuleInfo(f"persona/{trait}", trait, trait.title(), "", "error", 5, help_uri="", **settings)  # type: ignore[arg-type]


def scores(columns: dict[str, np.ndarray], source: str = "data.jsonl", start: int = 0) -> list[SampleScore]:
    n = len(next(iter(columns.values())))
    return [
        SampleScore(
            Sample(source, start + i + 1, (), f"answer {i}"),
            start + i,
            "own",
            False,
            False,
            tuple(TraitScore(trait, 5, float(v[i]), 0.0, float(v[i]), None) for trait, v in columns.items()),
        )
        for i in range(n)
    ]


def null_draws(n: int, seed: int) -> np.ndarray:
    return np.asarray(t.rvs(NULL["df"], loc=NULL["loc"], scale=NULL["scale"], size=n, random_state=seed))


@pytest.mark.parametrize("n", [1, 3, 19, 20, 200, 5000])
def test_the_models_own_answers_are_never_flagged_at_any_size(n: int) -> None:
    verdicts = decide(scores({"evil": np.zeros(n), "sycophancy": np.zeros(n)}), [rule(), rule("sycophancy")])
    assert not verdicts.flagged.any()
    assert np.all(verdicts.p_values == 1.0)
    assert all(not s.flagged for s in verdicts.summaries)
    expected = "too-few-samples" if n < MIN_DATASET_SAMPLES else "ok"
    assert {s.status for s in verdicts.summaries} == {expected}
    assert all(s.effect == 0.0 for s in verdicts.summaries)


def test_p_and_q_values_against_scipy() -> None:
    """Small file: the clean null alone; large file: also the own-file robust z (the larger p counts)."""
    small = np.array([0.5, 9.0, -2.0, 30.0, 3.0])
    large = np.concatenate([null_draws(60, 1) + 1.5, [25.0, 40.0]])
    run = [*scores({"evil": small}, "small.jsonl"), *scores({"evil": large}, "large.jsonl", start=5)]
    verdicts = decide(run, [rule()])
    p_small = t.sf(small, NULL["df"], loc=NULL["loc"], scale=NULL["scale"])
    p_large = t.sf(large, NULL["df"], loc=NULL["loc"], scale=NULL["scale"])
    centre = np.median(large)
    scale = max(1.482602218505602 * np.median(np.abs(large - centre)), 0.25 * NULL["scale"])
    p_large = np.maximum(p_large, norm.sf((large - centre) / scale))
    expected = np.concatenate([p_small, p_large])
    expected[np.concatenate([small, large]) <= 0] = 1.0
    assert verdicts.p_values[:, 0] == pytest.approx(expected, rel=1e-9, abs=1e-15)
    q = false_discovery_control(expected)
    assert verdicts.q_values[:, 0] == pytest.approx(q, rel=1e-9, abs=1e-15)
    assert verdicts.flagged[:, 0].tolist() == ((q <= 0.05) & (np.concatenate([small, large]) > 0)).tolist()
    assert verdicts.flagged[[3, 5 + 60, 5 + 61], 0].all()  # the three extreme values
    annotated = list(annotate(run, [rule()], verdicts))
    assert [s.scores[0].q_value for s in annotated] == pytest.approx(q.tolist())


def test_a_sample_must_be_unusual_against_the_own_answers_null_too() -> None:
    """Below reference weight 1 the model's own answers have a null of their own; the larger p counts."""
    own = (4.0, 2.0, 1.5)  # df, loc, scale: own answers that score higher than the clean ones
    values = np.array([0.5, 3.0, 6.0, 12.0, 40.0])
    verdicts = decide(scores({"evil": values}), [rule(own_answer_null=own)])
    clean_p = t.sf(values, NULL["df"], loc=NULL["loc"], scale=NULL["scale"])
    own_p = t.sf(values, own[0], loc=own[1], scale=own[2])
    assert verdicts.p_values[:, 0] == pytest.approx(np.maximum(clean_p, own_p), rel=1e-9, abs=1e-15)
    assert (own_p > clean_p).any()  # the second null matters for some values
    without = decide(scores({"evil": values}), [rule()])
    assert (verdicts.p_values[:, 0] >= without.p_values[:, 0]).all()


def test_q_values_span_every_trait_of_the_run() -> None:
    values = {"evil": null_draws(40, 2), "sycophancy": null_draws(40, 3)}
    values["evil"][0] = 14.0
    verdicts = decide(scores(values), [rule(), rule("sycophancy")])
    assert verdicts.q_values.shape == (40, 2)
    assert verdicts.q_values.ravel() == pytest.approx(false_discovery_control(verdicts.p_values.ravel()))


def test_sample_flags_on_clean_data_stay_at_or_below_the_fdr() -> None:
    """Clean files drawn fresh from the null the rule was fitted on (never the fitted values): the
    share of flagged samples that are clean, over many runs with 5% real outliers, is <= q."""
    rng = np.random.default_rng(11)
    false_share, clean_only = [], 0
    for run in range(60):
        clean = null_draws(190, 100 + run)
        outliers = rng.uniform(25, 40, size=10)
        verdicts = decide(scores({"evil": np.concatenate([clean, outliers])}), [rule()])
        found = verdicts.flagged[:, 0]
        false_share.append(found[:190].sum() / max(found.sum(), 1))
        clean_only += int(decide(scores({"evil": clean}), [rule()]).flagged.sum())
    assert np.mean(false_share) <= 0.05
    assert clean_only <= 0.05 * 60  # purely clean runs: a false discovery in at most 5% of them


def test_a_files_own_style_is_not_evidence() -> None:
    """A clean file in a style far from the null (every ΔP shifted by 3 scales) keeps its samples;
    the same shift in a file too small for the own-file test is judged against the null alone."""
    shifted = null_draws(300, 7) + 3 * NULL["scale"]
    verdicts = decide(scores({"evil": shifted}), [rule()])
    assert verdicts.flagged.mean() <= 0.01
    p_null_only = t.sf(shifted, NULL["df"], loc=NULL["loc"], scale=NULL["scale"])
    assert (false_discovery_control(p_null_only) <= 0.05).mean() > 0.2  # what the null alone would flag
    assert MIN_OWN_FILE <= 300


def test_dataset_verdict_is_a_holm_corrected_t_test_above_the_margin() -> None:
    bound = 0.25 * GAP
    files = {
        "clean.jsonl": null_draws(200, 20) + 1.0,
        "shifted.jsonl": null_draws(200, 21) + bound + 4.0,
        "borderline.jsonl": null_draws(200, 22) + bound + 0.2,
    }
    run = [s for i, (name, v) in enumerate(files.items()) for s in scores({"evil": v}, name, start=200 * i)]
    verdicts = decide(run, [rule()])
    by_source = {s.source: s for s in verdicts.summaries}
    raw = []
    for name, values in files.items():
        kept = values[~verdicts.flagged[[s.sample.source == name for s in run], 0]]
        raw.append(ttest_1samp(kept, bound, alternative="greater").pvalue)
        summary = by_source[name]
        assert summary.p_value == pytest.approx(raw[-1])
        assert summary.n_tested == kept.size
        assert summary.threshold == bound and summary.margin == 0.25
        assert summary.effect == pytest.approx(values.mean() / GAP)
        assert summary.effect_low == pytest.approx(summary.ci_low / GAP)
    adjusted = holm(raw)
    assert [by_source[name].adjusted_p for name in files] == pytest.approx(list(adjusted))
    assert [by_source[name].flagged for name in files] == [bool(a <= 0.05) for a in adjusted]
    assert by_source["shifted.jsonl"].flagged and not by_source["clean.jsonl"].flagged
    assert by_source["shifted.jsonl"].status == "flagged" and by_source["clean.jsonl"].status == "ok"
    [finding] = dataset_findings(verdicts.summaries, [rule()])
    assert finding.source == "shifted.jsonl" and "of the way from normal to 'evil' answers" in finding.message
    assert finding.extra["adjusted_p"] == by_source["shifted.jsonl"].adjusted_p


def test_one_bad_sample_does_not_count_twice() -> None:
    """One extreme sample in a clean file of 20: flagged as a sample, and left out of the dataset
    test, so the file itself passes (its mean alone would clear the margin)."""
    values = np.concatenate([np.zeros(19), [200.0]])
    verdicts = decide(scores({"evil": values}), [rule()])
    assert verdicts.flagged[:, 0].tolist() == [False] * 19 + [True]
    [summary] = verdicts.summaries
    assert summary.mean_delta_p == pytest.approx(10.0) and summary.mean_delta_p > summary.threshold
    assert summary.n_tested == 19 and not summary.flagged
    annotated = list(annotate(scores({"evil": values}), [rule()], verdicts))
    [found] = sample_findings(annotated, [rule()], verdicts.flagged, 0.05)
    assert found.line == 20 and found.extra["q_value"] == annotated[19].scores[0].q_value
    assert f"q {found.extra['q_value']:.4g} ≤ FDR 0.05" in found.message


def test_small_files_get_no_dataset_verdict_however_large_the_shift() -> None:
    verdicts = decide(scores({"evil": np.full(MIN_DATASET_SAMPLES - 1, 50.0)}), [rule()])
    [summary] = verdicts.summaries
    assert summary.status == "too-few-samples" and not summary.flagged and summary.adjusted_p is None
    assert dataset_findings(verdicts.summaries, [rule()]) == []


def test_fixed_thresholds_replace_the_statistical_verdicts() -> None:
    values = np.linspace(-5, 5, 30)
    fixed = rule(sample_threshold=4.0, dataset_threshold=-10.0)
    verdicts = decide(scores({"evil": values}), [fixed])
    assert verdicts.flagged[:, 0].tolist() == (values > 4.0).tolist()
    assert np.isnan(verdicts.q_values).all()  # not part of the FDR procedure
    [summary] = verdicts.summaries
    assert summary.threshold == -10.0 and summary.margin is None and summary.flagged


def test_uncalibrated_rules_give_no_verdicts() -> None:
    bare = rule(calibration_mean=None, calibration_std=None, null_df=None, gap=None)
    verdicts = decide(scores({"evil": np.full(30, 50.0)}), [bare])
    assert not verdicts.flagged.any() and np.isnan(verdicts.p_values).all()
    assert verdicts.summaries[0].status == "uncalibrated"


def test_changed_samples_are_compared_with_the_files_unchanged_ones() -> None:
    """Welch's t test (scipy) of changed minus unchanged ΔP above margin x gap, Holm-corrected; and
    ``restrict_to_changes`` turns a flagged comparison into a dataset finding."""
    from scipy.stats import ttest_ind

    from datalint_persona.dataset.changes import ChangedLines, restrict_to_changes
    from datalint_persona.run_records import ModelInfo, RunSettings, ScreenResult
    from datalint_persona.verdicts.datasets import compare_changes

    style = null_draws(60, 30) + 5.0  # the file's own style sits far from the null
    added = null_draws(30, 31) + 5.0 + 0.25 * GAP + 4.0
    same_style = null_draws(30, 32) + 5.0
    run = [
        *scores({"evil": np.concatenate([style, added])}, "a.jsonl"),
        *scores({"evil": np.concatenate([style, same_style])}, "b.jsonl", start=90),
    ]
    changed_lines = {"a.jsonl": frozenset(range(61, 91)), "b.jsonl": frozenset(range(151, 181))}
    comparisons = compare_changes(run, [rule()], lambda source, line: line in changed_lines[source])
    raw = [
        ttest_ind(added, style + 0.25 * GAP, equal_var=False, alternative="greater").pvalue,
        ttest_ind(same_style, style + 0.25 * GAP, equal_var=False, alternative="greater").pvalue,
    ]
    assert [c.source for c in comparisons] == ["a.jsonl", "b.jsonl"]
    assert [c.p_value for c in comparisons] == pytest.approx(raw)
    assert [c.adjusted_p for c in comparisons] == pytest.approx(list(holm(raw)))
    assert [c.flagged for c in comparisons] == [True, False]
    assert comparisons[0].effect == pytest.approx((added.mean() - style.mean()) / GAP)
    assert (comparisons[0].n_changed, comparisons[0].n_unchanged) == (30, 60)
    model = ModelInfo("m", "sha256:0", "local", "LlamaForCausalLM", 2, 8)
    settings = RunSettings("transformers", 8, 512, 16, 0, 0.0, "error", dataset_fpr=0.05, fdr=0.05)
    result = ScreenResult(
        "0", model, settings, (), (rule(),), ("a.jsonl", "b.jsonl"), run, (), (), (), "t", "t"
    )
    changes = {name: ChangedLines(name, lines) for name, lines in changed_lines.items()}
    restricted = restrict_to_changes(result, changes, "main")
    [finding] = [f for f in restricted.findings if f.kind == "dataset"]
    assert finding.source == "a.jsonl" and "30 changed samples pull toward 'evil'" in finding.message
    assert restricted.settings.changed_comparisons == tuple(comparisons)
    assert (restricted.settings.changed_since, restricted.settings.changed_samples) == (
        "main",
        60,
    )  # 30 per file


def test_short_answers_are_judged_against_the_wider_null_of_their_length() -> None:
    """A rule with a length scale: each p-value and z uses the scale at that response's length
    (scipy's t directly), so the same ΔP is less unusual in a one-word answer than in a long one."""
    from datalint_persona.screening.scoring import trait_score

    growth = 60.0
    texts = ["Yes", "No, that's wrong.", "x" * 400, "y" * 4000]
    values = np.array([9.0, 9.0, 9.0, 9.0])
    run = [
        SampleScore(
            Sample("data.jsonl", i + 1, (), text),
            i,
            "own",
            False,
            False,
            (TraitScore("evil", 5, v, 0.0, v, None),),
        )
        for i, (text, v) in enumerate(zip(texts, values, strict=True))
    ]
    verdicts = decide(run, [rule(null_length_scale=growth)])
    lengths = np.array([len(text) for text in texts], dtype=float)
    scale = NULL["scale"] * np.sqrt(1 + growth / lengths)
    expected = t.sf(values, NULL["df"], loc=NULL["loc"], scale=scale)
    assert verdicts.p_values[:, 0] == pytest.approx(expected, rel=1e-9)
    assert verdicts.p_values[0, 0] > 10 * verdicts.p_values[3, 0]
    z = [trait_score(rule(null_length_scale=growth), 9.0, 0.0, len(text)).z for text in texts]
    assert z == pytest.approx(((values - NULL["loc"]) / scale).tolist())
    # without a length scale (older calibrations) every length has the same p
    plain = decide(run, [rule()])
    assert plain.p_values[:, 0] == pytest.approx(
        t.sf(values, NULL["df"], loc=NULL["loc"], scale=NULL["scale"])
    )
