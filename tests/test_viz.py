"""camp.viz: each plot shows the numbers it is given; calibration error on hand-computed cases."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from camp import viz  # noqa: E402

# Four samples, confidences 0.9, 0.8, 0.6, 0.7; right, wrong, right, right.
PROBS4 = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
LABELS4 = np.array([0, 0, 0, 1])


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# --- expected calibration error -------------------------------------------------------------------------


@pytest.mark.parametrize(("n_bins", "expected"), [
    # 10 bins: each sample alone in its bin, ECE = mean |correct - conf| = (0.1 + 0.8 + 0.4 + 0.3) / 4 = 0.4
    (10, 0.4),
    # 5 bins: [0.6, 0.8) holds 0.6, 0.7 (both right): acc 1, conf 0.65, gap 0.35;
    #         [0.8, 1.0] holds 0.9 (right), 0.8 (wrong): acc 0.5, conf 0.85, gap 0.35 -> 2/4*0.35 + 2/4*0.35
    (5, 0.35),
    # 3 bins (unequal counts, so the n_b / N weights matter): [1/3, 2/3) holds 0.6 (right): gap 0.4;
    #         [2/3, 1] holds 0.9, 0.8, 0.7: acc 2/3, conf 0.8, gap 2/15 -> 1/4*0.4 + 3/4*2/15 = 0.1 + 0.1
    (3, 0.2),
    # 2 bins: all four in [0.5, 1.0]: acc 3/4, conf (0.9 + 0.8 + 0.6 + 0.7) / 4 = 0.75 -> 0
    (2, 0.0),
])
def test_ece_hand_computed(n_bins, expected):
    assert viz.expected_calibration_error(PROBS4, LABELS4, n_bins=n_bins) == pytest.approx(expected)


def test_ece_is_zero_for_a_perfectly_calibrated_construction():
    # Bin [0.7, 0.8): 8 samples at confidence 0.75, 6 right. Bin [0.5, 0.6): 4 samples at 0.5, 2 right.
    probs = np.vstack([np.tile([0.75, 0.25], (8, 1)), np.tile([0.5, 0.5], (4, 1))])  # argmax of a tie: 0
    labels = np.array([0, 0, 0, 1, 0, 0, 0, 1] + [0, 1, 0, 1])
    assert viz.expected_calibration_error(probs, labels) == pytest.approx(0.0)


def test_ece_lies_in_unit_interval_and_reaches_one_when_sure_and_wrong():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 6)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 6, size=500)
    for n_bins in (1, 3, 10, 50):
        assert 0.0 <= viz.expected_calibration_error(probs, labels, n_bins) <= 1.0
    # Confidence exactly 1.0 (falls in the last bin, not past it) and always wrong: ECE = 1.
    assert viz.expected_calibration_error(np.array([[1.0, 0.0]] * 3), np.array([1, 1, 1])) == pytest.approx(1.0)


@pytest.mark.parametrize(("probs", "labels", "message"), [
    (np.full(3, 0.5), np.zeros(3, dtype=int), "2-D"),
    (np.zeros((0, 2)), np.zeros(0, dtype=int), "non-empty"),
    (np.full((3, 2), 0.5), np.zeros(2, dtype=int), r"shape \(3,\)"),
    (np.full((2, 2), 0.5), np.array([0, 2]), r"0\.\.1"),
    (np.full((2, 2), 0.5), np.array([-1, 0]), r"0\.\.1"),
    (np.full((2, 2), 0.5), np.array([0.0, 1.0]), "integer"),
    (np.array([[2.0, -1.0]]), np.array([0]), "softmax"),
])
def test_calibration_shape_and_value_errors_say_what_is_wrong(probs, labels, message):
    with pytest.raises(ValueError, match=message):
        viz.expected_calibration_error(probs, labels)
    with pytest.raises(ValueError, match=message):
        viz.reliability_diagram(probs, labels)


def test_n_bins_must_be_positive():
    with pytest.raises(ValueError, match="n_bins"):
        viz.expected_calibration_error(PROBS4, LABELS4, n_bins=0)


# --- reliability diagram --------------------------------------------------------------------------------


def test_reliability_diagram_bars_are_bin_accuracies_and_title_has_ece():
    ax, ece = viz.reliability_diagram(PROBS4, LABELS4, n_bins=5)
    assert ece == pytest.approx(0.35)
    assert "ECE = 0.350" in ax.get_title()
    bars = sorted((p.get_x() + p.get_width() / 2, p.get_height()) for p in ax.patches)
    np.testing.assert_allclose(bars, [(0.7, 1.0), (0.9, 0.5)])  # (centre, accuracy); empty bins draw nothing
    diagonal = ax.lines[0]
    assert list(diagonal.get_xdata()) == [0, 1] and list(diagonal.get_ydata()) == [0, 1]


def test_reliability_diagram_puts_edge_confidences_in_the_upper_bin():
    # 0.7 * 10 and 0.6 * 10 sit exactly on bin edges; 1.0 belongs to the last bin.
    probs = np.array([[0.7, 0.3], [0.6, 0.4], [1.0, 0.0]])
    ax, _ = viz.reliability_diagram(probs, np.array([0, 0, 0]))
    centres = sorted(p.get_x() + p.get_width() / 2 for p in ax.patches)
    assert centres == pytest.approx([0.65, 0.75, 0.95])


# --- training curves ------------------------------------------------------------------------------------

HISTORY = [
    {"step": 10, "loss/train": 2.0},
    {"step": 20, "loss/train": 1.5, "eval/macro_f1": 0.1, "eval/accuracy": 0.3},
    {"step": 30, "loss/train": 1.0},
    {"step": 40, "loss/train": 0.5, "eval/macro_f1": 0.4, "eval/accuracy": 0.6},
]


def test_training_curves_one_axes_per_key_plotting_the_history():
    keys = ("loss/train", "eval/macro_f1", "eval/accuracy")
    axes = viz.training_curves(HISTORY, keys=keys)
    assert len(axes) == 3 and len({id(a) for a in axes}) == 3
    assert [a.get_title() for a in axes] == list(keys)
    assert list(axes[0].lines[0].get_xdata()) == [10, 20, 30, 40]
    assert list(axes[0].lines[0].get_ydata()) == [2.0, 1.5, 1.0, 0.5]
    assert list(axes[1].lines[0].get_xdata()) == [20, 40]  # evaluated only on some steps
    assert list(axes[1].lines[0].get_ydata()) == [0.1, 0.4]
    assert list(axes[2].lines[0].get_ydata()) == [0.3, 0.6]


def test_training_curves_single_key_returns_one_axes_and_draws_on_the_given_one():
    _, ax = plt.subplots()
    assert viz.training_curves(HISTORY, keys=("eval/macro_f1",), ax=ax) is ax
    assert list(ax.lines[0].get_ydata()) == [0.1, 0.4]
    assert isinstance(viz.training_curves(HISTORY, keys=("loss/train",)), matplotlib.axes.Axes)


def test_training_curves_missing_key_names_it_and_lists_available():
    with pytest.raises(ValueError, match="'eval/loss'") as info:
        viz.training_curves(HISTORY, keys=("loss/train", "eval/loss"))
    assert "eval/accuracy" in str(info.value) and "eval/macro_f1" in str(info.value)


def test_training_curves_refuses_one_ax_for_several_keys():
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="ax"):
        viz.training_curves(HISTORY, ax=ax)


# --- confusion matrix -----------------------------------------------------------------------------------


def test_confusion_matrix_normalises_rows_and_annotates_every_cell():
    labels = ["joy", "anger", "fear"]
    ax = viz.confusion_matrix([[3, 1, 0], [0, 0, 0], [1, 1, 2]], labels)
    image = np.asarray(ax.images[0].get_array())
    assert image[0] == pytest.approx([0.75, 0.25, 0.0])
    assert image[2].sum() == pytest.approx(1.0)
    assert image[1].sum() == 0  # an empty row stays empty instead of dividing by zero
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == len(labels) ** 2 and texts[:3] == ["0.75", "0.25", "0.00"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")
    assert [t.get_text() for t in ax.get_xticklabels()] == labels


def test_confusion_matrix_raw_counts_are_integers_with_white_text_on_dark_cells():
    ax = viz.confusion_matrix(np.array([[50, 1], [2, 40]]), ["a", "b"], normalize=False)
    assert np.asarray(ax.images[0].get_array()).tolist() == [[50, 1], [2, 40]]
    assert [t.get_text() for t in ax.texts] == ["50", "1", "2", "40"]
    assert [t.get_color() for t in ax.texts] == ["white", "black", "black", "white"]


def test_confusion_matrix_shape_mismatch_raises():
    with pytest.raises(ValueError, match=r"shape \(2, 2\), expected \(3, 3\)"):
        viz.confusion_matrix([[1, 2], [3, 4]], ["a", "b", "c"])


# --- per-class F1 ---------------------------------------------------------------------------------------

PER_CLASS = {"sadness": {"precision": 0.5, "recall": 0.4, "f1": 0.2, "support": 10},
             "joy": {"precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 30}}


def test_per_class_f1_bar_heights_are_the_f1_values():
    ax = viz.per_class_f1(PER_CLASS)
    assert [p.get_height() for p in ax.patches] == pytest.approx([0.2, 0.9])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["sadness", "joy"]
    assert ax.get_ylim() == (0, 1)


def test_per_class_f1_pairs_model_and_baseline_bars():
    baseline = {"sadness": {"f1": 0.1}, "joy": {"f1": 0.5}}
    ax = viz.per_class_f1(PER_CLASS, baseline=baseline)
    assert [p.get_height() for p in ax.patches] == pytest.approx([0.2, 0.9, 0.1, 0.5])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["model", "baseline"]
    with pytest.raises(ValueError, match="joy"):
        viz.per_class_f1(PER_CLASS, baseline={"sadness": {"f1": 0.1}})


def test_per_class_f1_reads_sklearn_classification_report():
    from sklearn.metrics import classification_report

    report = classification_report([0, 0, 1, 1], [0, 1, 1, 1], target_names=["a", "b"], output_dict=True)
    ax = viz.per_class_f1(report)
    assert [p.get_height() for p in ax.patches] == pytest.approx([report["a"]["f1-score"], 0.8])


# --- every plot draws on the Axes it is given -----------------------------------------------------------


@pytest.mark.parametrize("draw", [
    lambda ax: viz.confusion_matrix([[1, 0], [0, 1]], ["a", "b"], ax=ax),
    lambda ax: viz.per_class_f1(PER_CLASS, ax=ax),
    lambda ax: viz.reliability_diagram(PROBS4, LABELS4, ax=ax)[0],
])
def test_plots_return_the_axes_they_were_given(draw):
    _, ax = plt.subplots()
    assert draw(ax) is ax


def test_overoptimisation_plots_proxy_and_gold_against_root_kl():
    from camp import viz

    curve = [{"kl": 0.0, "reward_model": 0.1, "judge": 0.2}, {"kl": 4.0, "reward_model": 0.9, "judge": 0.1}]
    proxy, gold = viz.overoptimisation({"seed 0": curve})
    (line,) = proxy.get_lines()
    assert list(line.get_xdata()) == [0.0, 2.0] and list(line.get_ydata()) == [0.1, 0.9]
    assert list(gold.get_lines()[0].get_ydata()) == [0.2, 0.1] and "never optimised" in gold.get_title()
