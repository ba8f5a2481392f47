"""smallvision.report.stats against scipy computed here, on small hand-made frames."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from smallvision.publish.compare import welch_difference
from smallvision.report import stats

T_975_2 = 4.302652729911275  # Student-t 97.5% quantile, 2 degrees of freedom (printed tables: 4.303)

A = [0.90, 0.92, 0.94]  # the best recipe (on validation too, unless a test says otherwise)
B = [0.80, 0.83, 0.81]  # clearly worse than A
C = [0.91, 0.93, 0.91]  # within seed noise of A
F = [0.88, 0.90, 0.92]  # A - 0.02 on every seed: zero-variance differences


def frame(val: dict | None = None, **recipes) -> pd.DataFrame:
    """One row per run; its validation accuracy is its test accuracy unless `val` gives a recipe
    its own (per seed)."""
    val = val or {}
    rows = [{"dataset": "d", "recipe": name, "seed": seed, "accuracy": value, "macro_f1": value - 0.05,
             "val_accuracy": val.get(name, values)[seed]}
            for name, values in recipes.items() for seed, value in enumerate(values)]
    return pd.DataFrame(rows)


def t_ci(values, confidence=0.95):
    """The reference interval, computed independently of stats.interval."""
    ci = sp.ttest_1samp(np.asarray(values, dtype=float), 0.0).confidence_interval(confidence)
    return ci.low, ci.high


def row(table: pd.DataFrame, recipe: str) -> pd.Series:
    return table.set_index("recipe").loc[recipe]


def test_summarise_matches_scipy_two_recipes_three_seeds():
    table = stats.summarise(frame(a=A, b=B))
    assert list(table.recipe) == ["a", "b"]
    for name, values in (("a", A), ("b", B)):
        got = row(table, name)
        low, high = t_ci(values)
        assert got.accuracy == pytest.approx(np.mean(values))
        assert got.accuracy_std == pytest.approx(np.std(values, ddof=1))
        assert (got.accuracy_ci_low, got.accuracy_ci_high) == pytest.approx((low, high))
        assert (got.macro_f1_ci_low, got.macro_f1_ci_high) == pytest.approx(t_ci(np.subtract(values, 0.05)))
        assert got.accuracy_n == 3 and got.n_seeds == 3 and got.seeds == [0, 1, 2]
    # By hand: mean 0.92, std 0.02, half-width t * s / sqrt(n).
    a = row(table, "a")
    assert a.accuracy_std == pytest.approx(0.02)
    assert a.accuracy_ci_high - 0.92 == pytest.approx(T_975_2 * 0.02 / np.sqrt(3))
    assert a.accuracy_ci_high == pytest.approx(0.9696827, abs=1e-6)


def test_summarise_other_confidence():
    got = row(stats.summarise(frame(a=A), confidence=0.9), "a")
    assert (got.accuracy_ci_low, got.accuracy_ci_high) == pytest.approx(t_ci(A, 0.9))
    assert got.accuracy_ci_high < row(stats.summarise(frame(a=A)), "a").accuracy_ci_high


def test_summarise_one_run_has_no_interval():
    got = row(stats.summarise(frame(e=[0.85])), "e")
    assert got.accuracy == 0.85 and got.accuracy_n == 1 and got.n_seeds == 1 and got.seeds == [0]
    assert np.isnan(got.accuracy_std) and np.isnan(got.accuracy_ci_low) and np.isnan(got.accuracy_ci_high)


def test_summarise_zero_variance_interval_is_the_mean():
    got = row(stats.summarise(frame(z=[0.9, 0.9, 0.9])), "z")
    with np.errstate(invalid="ignore"):
        assert np.isnan(sp.t.interval(0.95, 2, loc=0.9, scale=0.0)[0])  # what scipy alone would give
    assert got.accuracy_std == 0.0
    assert got.accuracy_ci_low == got.accuracy_ci_high == got.accuracy == pytest.approx(0.9)


def test_summarise_drops_nan():
    runs = frame(b=B)
    runs.loc[1, "macro_f1"] = np.nan
    got = row(stats.summarise(runs), "b")
    kept = [B[0] - 0.05, B[2] - 0.05]
    assert got.macro_f1_n == 2 and got.accuracy_n == 3 and got.n_seeds == 3
    assert got.macro_f1 == pytest.approx(np.mean(kept))
    assert (got.macro_f1_ci_low, got.macro_f1_ci_high) == pytest.approx(t_ci(kept))


def test_summarise_rejects_repeated_seed_and_missing_metric():
    with pytest.raises(ValueError, match="repeated"):
        stats.summarise(pd.concat([frame(a=A), frame(a=A)]))
    with pytest.raises(ValueError, match="balanced_accuracy"):
        stats.summarise(frame(a=A), metrics=("balanced_accuracy",))


def test_paired_vs_chosen():
    table = stats.paired_vs_chosen(frame(a=A, b=B, c=C, e=[0.85], f=F, g=A))
    assert set(table.chosen_recipe) == {"a"}  # g ties a exactly on validation: the first by name wins
    best = row(table, "a")
    assert best.is_chosen and best.verdict == "chosen" and best.diff_mean == 0
    assert (best.diff_ci_low, best.diff_ci_high) == (0.0, 0.0)  # its diff_n: test_the_chosen_arm_pairs_its_own_seeds_once

    win = row(table, "b")  # a clearly beats b
    ref = sp.ttest_rel(B, A).confidence_interval()
    assert (win.diff_ci_low, win.diff_ci_high) == pytest.approx((ref.low, ref.high))
    assert win.diff_mean == pytest.approx(np.mean(np.subtract(B, A))) and win.diff_n == 3
    assert win.diff_ci_high < 0 and win.verdict == "below" and not win.is_chosen

    tie = row(table, "c")
    assert (tie.diff_ci_low, tie.diff_ci_high) == pytest.approx(t_ci(np.subtract(C, A)))
    assert tie.diff_ci_low < 0 < tie.diff_ci_high and tie.verdict == "within noise"

    one = row(table, "e")
    assert one.diff_n == 1 and one.verdict == "no interval"
    assert one.diff_mean == pytest.approx(0.85 - 0.90) and np.isnan(one.diff_ci_low) and np.isnan(one.diff_ci_high)

    constant = row(table, "f")  # differences all -0.02: interval [d, d], which excludes 0: never "within noise"
    assert constant.diff_ci_low == constant.diff_ci_high == pytest.approx(-0.02)
    assert constant.verdict == "identical over seeds"
    same = row(table, "g")
    assert (same.diff_ci_low, same.diff_ci_high) == (0.0, 0.0) and not same.is_chosen
    assert same.verdict == "identical over seeds"


def test_the_chosen_arm_pairs_its_own_seeds_once():
    assert row(stats.paired_vs_chosen(frame(a=A, b=B)), "a").diff_n == 3


def test_paired_vs_chosen_chooses_on_validation_not_test():
    """a is best on test but b on validation: b is the reference, and a's lead over it on test is
    reported (above), not used to choose; an arm without a validation figure (trained on train +
    validation) is never chosen, however good on test."""
    table = stats.paired_vs_chosen(frame(a=A, b=B, c=C, val={"a": [0.70, 0.71, 0.72], "b": [0.95, 0.96, 0.97],
                                                            "c": [np.nan] * 3}))
    assert set(table.chosen_recipe) == {"b"} and table.is_chosen.tolist() == [False, True, False]
    assert row(table, "b").verdict == "chosen" and row(table, "b").diff_mean == 0
    a = row(table, "a")
    ref = sp.ttest_rel(A, B).confidence_interval()
    assert (a.diff_ci_low, a.diff_ci_high) == pytest.approx((ref.low, ref.high))
    assert a.diff_mean == pytest.approx(np.mean(np.subtract(A, B))) and a.diff_ci_low > 0 and a.verdict == "above"
    assert row(table, "c").verdict == "above"  # C - B: above too, but c had no validation figure to be chosen on

    runs = frame(a=A, b=B).drop(columns="val_accuracy")  # no validation split: nothing is chosen
    table = stats.paired_vs_chosen(runs)
    assert table.chosen_recipe.isna().all() and not table.is_chosen.any() and table.diff_mean.isna().all()


def test_paired_vs_chosen_pairs_only_shared_seeds():
    runs = frame(a=A, b=B)
    runs.loc[(runs.recipe == "b") & (runs.seed == 2), "accuracy"] = np.nan
    got = row(stats.paired_vs_chosen(runs), "b")
    diffs = np.subtract(B[:2], A[:2])
    assert got.diff_n == 2 and got.diff_mean == pytest.approx(diffs.mean())
    assert (got.diff_ci_low, got.diff_ci_high) == pytest.approx(t_ci(diffs))


def test_against_published():
    published = {("d", "a"): ("accuracy", 0.85), ("d", "b"): ("accuracy", 0.90), ("d", "c"): ("accuracy", 0.917),
                 ("d", "e"): ("accuracy", 0.80), ("d", "x"): ("k3_accuracy", 0.9)}
    table = stats.against_published(frame(a=A, b=B, c=C, e=[0.85]), published)
    a = row(table, "a")
    assert a.diff_mean == pytest.approx(0.07) and a.ours_mean == pytest.approx(0.92) and a.n == 3
    assert (a.diff_ci_low, a.diff_ci_high) == pytest.approx(t_ci(np.subtract(A, 0.85)))
    assert a.diff_ci_low > 0 and a.verdict == "above"
    b = row(table, "b")
    assert b.diff_ci_high < 0 and b.verdict == "below"
    assert (b.diff_ci_low, b.diff_ci_high) == pytest.approx(t_ci(np.subtract(B, 0.90)))
    c = row(table, "c")
    assert c.diff_ci_low < 0 < c.diff_ci_high and c.verdict == "within noise"
    e = row(table, "e")
    assert e.n == 1 and e.verdict == "no interval"
    assert e.diff_mean == pytest.approx(0.05) and np.isnan(e.diff_ci_low)
    assert row(table, "x").verdict == "no runs"
    assert not {"better", "worse"} & set(table.columns)  # the verdict alone says it, in the shared vocabulary


def summary_of(values) -> tuple[float, float, int]:
    return float(np.mean(values)), float(np.std(values, ddof=1)), len(values)


def test_welch_difference_matches_scipy_from_the_runs_themselves():
    unequal = [0.70, 0.90, 0.78, 0.80]  # four seeds, a wider spread than A's
    for a, b in ((B, A), (C, A), (unequal, A)):
        ci = sp.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
        difference, low, high = welch_difference(summary_of(a), summary_of(b))
        assert difference == pytest.approx(np.mean(a) - np.mean(b)) and (low, high) == pytest.approx((ci.low, ci.high))
    assert welch_difference(summary_of(B), summary_of(A))[2] < 0  # clearly worse: the interval excludes 0
    _, low, high = welch_difference(summary_of(C), summary_of(A))
    assert low < 0 < high  # within seed noise


def test_welch_difference_without_spread_or_with_one_run():
    assert welch_difference((0.5, 0.0, 3), (0.4, 0.0, 3)) == pytest.approx((0.1, 0.1, 0.1))
    difference, low, high = welch_difference((0.5, np.nan, 1), (0.4, 0.01, 3))
    assert difference == pytest.approx(0.1) and np.isnan(low) and np.isnan(high)


def test_describe():
    low, high = t_ci(A)
    assert stats.describe(np.mean(A), low, high, 3) == "0.920 ± 0.050 (n=3)"
    assert stats.describe(np.mean(A), low, high, 3, digits=4) == "0.9200 ± 0.0497 (n=3)"
    assert stats.describe(0.912, np.nan, np.nan, 1) == "0.912 (1 run, no interval)"
    assert stats.describe(0.9, 0.9, 0.9, 3) == "0.900 (n=3, identical over seeds)"  # not "± 0.000": no certainty
    assert stats.describe(np.nan, np.nan, np.nan, 0) == "n/a"


def test_recipes_that_ignore_their_seed_are_said_so_not_given_a_zero_interval():
    """Two recipes with the same figure at every seed (kNN on fixed features): their paired
    difference, and an SSL baseline's kNN, read "identical over seeds", not "± 0.000"."""
    from smallvision.report.ssl import figure_text
    from smallvision.report.text import versus_chosen

    runs = pd.DataFrame([{"dataset": "d", "recipe": recipe, "seed": seed, "accuracy": value, "val_accuracy": value}
                         for recipe, value in (("colour", 0.28), ("imagenet", 0.32)) for seed in (0, 1, 2)])
    colour = row(stats.paired_vs_chosen(runs), "colour")
    assert colour.chosen_recipe == "imagenet" and colour.verdict == "identical over seeds"
    assert versus_chosen(colour) == "-0.040 (identical over seeds)"
    assert figure_text(pd.Series([0.3, 0.3, 0.3]), 0.95) == "0.3000 (identical over seeds)"
    assert figure_text(pd.Series([0.3, 0.4]), 0.95).startswith("0.3500 ± ")


def history(with_seconds: bool = True) -> pd.DataFrame:
    curves = {0: [0.5, 0.8, 0.9], 1: [0.4, 0.7, 0.85], 2: [0.45, 0.6]}  # seed 2 stopped early
    rows = [{"dataset": "d", "recipe": "a", "seed": seed, "step": step, "metric": "val_accuracy", "value": value,
             "elapsed_seconds": 10.0 * step + seed}
            for seed, values in curves.items() for step, value in enumerate(values, start=1)]
    frame = pd.DataFrame(rows)
    return frame if with_seconds else frame.drop(columns="elapsed_seconds")


def test_metrics_json_gives_knn_accuracies_their_interval_and_no_empty_ones():
    """A kNN recipe's accuracy at each k is set against the seed's retrieval figure (k3_accuracy):
    it gets an interval over seeds as accuracy does; a recipe without kNN lists no k-metrics."""
    from smallvision.report.collect import Results, metrics_tree, summary_table

    runs = frame(knn=A, mlp=B)
    runs.loc[runs.recipe == "knn", "k3_accuracy"] = C
    tree = metrics_tree(Results(runs, summary_table(runs, 0.95), pd.DataFrame()))["d"]
    low, high = t_ci(C)
    assert (tree["knn"]["k3_accuracy_ci_low"], tree["knn"]["k3_accuracy_ci_high"]) == pytest.approx((low, high))
    assert tree["knn"]["k3_accuracy_n"] == 3 and tree["mlp"]["accuracy_n"] == 3
    assert not [key for key in tree["mlp"] if key.startswith("k3_")]


def test_curve_band():
    band = stats.curve_band(history()).set_index("step")
    assert list(band.n) == [3, 3, 2]
    assert band.loc[1, "mean"] == pytest.approx(0.45)
    assert (band.loc[1, "low"], band.loc[1, "high"]) == pytest.approx(t_ci([0.5, 0.4, 0.45]))
    assert (band.loc[3, "low"], band.loc[3, "high"]) == pytest.approx(t_ci([0.9, 0.85]))
    single = stats.curve_band(history()[lambda h: h.seed == 0]).set_index("step")
    assert single.n.tolist() == [1, 1, 1] and single.low.isna().all() and single.high.isna().all()


def test_learning_curves_band_draws_one_band_per_recipe():
    from smallvision.report.figures import learning_curves_band

    fig = learning_curves_band(stats.curve_band(history()), "d", metrics=("val_accuracy",))
    ax = fig.axes[0]
    assert len(ax.lines) == 1 and len(ax.collections) == 1


def test_first_reach_and_time_to_reach():
    runs = stats.first_reach(history(), 0.8).set_index("seed")
    assert runs.reached.tolist() == [True, True, False]
    assert runs.step.tolist()[:2] == [2, 3] and np.isnan(runs.step[2])
    assert runs.seconds.tolist()[:2] == [20.0, 31.0] and np.isnan(runs.seconds[2])
    summary = stats.time_to_reach(history(), 0.8).iloc[0]
    assert summary.n_runs == 3 and summary.n_reached == 2
    assert summary.step_mean == 2.5 and summary.seconds_mean == 25.5


def test_time_to_reach_steps_only_and_per_recipe_target():
    summary = stats.time_to_reach(history(with_seconds=False), {("d", "a"): 0.95})
    assert "seconds_mean" not in summary.columns
    got = summary.iloc[0]
    assert got.target == 0.95 and got.n_reached == 0 and np.isnan(got.step_mean)
    assert stats.time_to_reach(history(), {("d", "other"): 0.5}).empty


def test_accuracy_vs_time_keeps_every_recipe_name_inside_the_axes():
    """The slowest run's name is written to the left of its point: to the right it ran past the
    axes into the legend (the 128 px run of the pokemon150 study did)."""
    from smallvision.report.figures import accuracy_vs_time

    leaderboard = pd.DataFrame({"dataset": ["a", "a", "b"], "recipe": ["logreg", "effnet_probe", "effnet_finetune_modern_cpu"],
                                "train_seconds": [2.0, 70.0, 393.0], "accuracy": [0.2, 0.6, 0.93]})
    fig = accuracy_vs_time(leaderboard)
    fig.canvas.draw()
    ax = fig.axes[0]
    right_edge = ax.get_window_extent().x1
    names = [text for text in ax.texts if text.get_text() in set(leaderboard.recipe)]
    assert len(names) == 3
    assert all(text.get_window_extent().x1 <= right_edge for text in names)


@pytest.mark.parametrize("recipes, name", [(36, "recipe_{}"), (90, "cars_effnet_lite2_finetune_b32_trainval_cpu_{}")])
def test_accuracy_vs_time_legend_of_a_study_with_many_recipes_fits_the_figure(recipes, name):
    """The `full` study puts 30 recipes in one legend: in one column it ran off the figure's
    height and tight_layout gave up (a UserWarning, and a cut legend). The tests' study of every
    recipe, long names in several columns, ran off its width the same way."""
    from smallvision.report.figures import accuracy_vs_time

    leaderboard = pd.DataFrame({"dataset": np.repeat(["a", "b", "c"], recipes // 3),
                                "recipe": [name.format(i) for i in range(recipes)],
                                "train_seconds": np.linspace(2, 400, recipes), "accuracy": np.linspace(0.2, 0.9, recipes)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = accuracy_vs_time(leaderboard)
        fig.canvas.draw()
    legend = fig.axes[0].get_legend().get_window_extent()
    assert legend.y0 >= 0 and legend.y1 <= fig.bbox.height and legend.x1 <= fig.bbox.width


def test_learning_curves_of_a_study_with_many_recipes_share_one_legend_that_fits():
    """The tests' study runs every recipe on one dataset: one legend per panel, one entry a
    line, ran off the figure (tight_layout's UserWarning). Now one legend, in columns."""
    from smallvision.report.figures import learning_curves_band

    rows = [{"dataset": "d", "recipe": f"recipe_{i:02d}", "metric": metric, "step": step, "mean": 0.5 + step / 10,
             "low": 0.4, "high": 0.6, "n": 3} for i in range(46) for metric in ("val_accuracy", "train_loss")
            for step in (1, 2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = learning_curves_band(pd.DataFrame(rows), "d")
        fig.canvas.draw()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert len(legends) == 1 and len(legends[0].get_texts()) == 46
    extent = legends[0].get_window_extent()
    assert extent.y0 >= 0 and extent.y1 <= fig.bbox.height and extent.x1 <= fig.bbox.width


def test_mistakes_gallery_titles_clear_the_images_above_them():
    """Two rows of mistakes: each second-row title sits below the first row's images. With
    tight_layout the titles ran into the bottom of the images above (the pokemon150_224 report)."""
    from smallvision.report.figures import misclassified_gallery

    names = ["Pidgeotto", "Kingler", "Slowpoke", "Alakazam", "Nidoran-f", "Mr. Mime"]
    predictions = pd.DataFrame({"actual": names * 2, "predicted": names[1:] + names[:1] + names[1:] + names[:1],
                                "confidence": np.linspace(0.9, 0.5, 12), "correct": [False] * 12})
    images = np.random.default_rng(0).integers(0, 255, (12, 3, 224, 224), dtype=np.uint8)
    fig = misclassified_gallery(images, predictions, 12, "pokemon150_224: most confident mistakes")
    fig.canvas.draw()
    first_row, second_row = fig.axes[:6], fig.axes[6:]
    lowest_image_edge = min(ax.get_window_extent().y0 for ax in first_row)
    assert all(ax.title.get_window_extent().y1 <= lowest_image_edge for ax in second_row)
