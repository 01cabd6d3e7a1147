"""Tests of convbook.plot: figures with the right panels, titles and captions, a correct
confusion matrix, and clear errors for inputs a plot cannot show."""
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from convbook import models, plot

NAMES = ("zero", "one", "two", "three")


def _titles(fig: Figure) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def _history(with_val: bool = True) -> pd.DataFrame:
    history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.2, 0.8, 0.6],
                            "train_acc": [0.6, 0.7, 0.8]})
    if with_val:
        history["val_loss"], history["val_acc"] = [1.0, 0.9, 0.7], [0.65, 0.7, 0.75]
    return history


EVERY_PLOT = {
    "show_matrix": lambda: plot.show_matrix(torch.arange(6).reshape(2, 3)),
    "show_images": lambda: plot.show_images(torch.rand(20, 1, 28, 28), torch.zeros(20).long()),
    "show_feature_maps": lambda: plot.show_feature_maps(torch.rand(16, 10, 10)),
    "show_kernels": lambda: plot.show_kernels(torch.randn(4, 6, 5, 5)),
    "show_panels": lambda: plot.show_panels({"a": torch.rand(5, 5), "b": torch.randn(5, 5)},
                                            "two panels", signed=["b"]),
    "plot_one_cycle": lambda: plot.plot_one_cycle(
        pd.DataFrame({"lr": [0.1, 0.2, 0.1], "momentum": [0.95, 0.85, 0.95]}), "schedule"),
    "plot_history": lambda: plot.plot_history(_history()),
    "compare_histories": lambda: plot.compare_histories({"a": _history(), "b": _history()},
                                                        "two runs"),
    "plot_confusion_matrix": lambda: plot.plot_confusion_matrix(
        torch.randint(0, 500, (10, 10)), [f"class {i}" for i in range(10)]),
    "plot_architecture": lambda: plot.plot_architecture(models.LeNet(), (1, 1, 28, 28)),
}


@pytest.mark.parametrize("name", EVERY_PLOT)
def test_every_plot_returns_a_titled_figure_that_fits_the_page(name):
    fig = EVERY_PLOT[name]()
    assert isinstance(fig, Figure)
    assert fig.get_size_inches()[0] <= plot.MAX_WIDTH
    assert fig.dpi == plot.DPI
    suptitle = fig.get_suptitle()
    assert suptitle or any(_titles(fig))


def test_show_matrix_writes_integers_without_decimal_point():
    fig = plot.show_matrix(torch.arange(9.0).reshape(3, 3), title="X")
    assert _titles(fig) == ["X"]
    assert _texts(fig) == [str(i) for i in range(9)]
    assert fig.axes[0].get_xlabel() == "column" and fig.axes[0].get_ylabel() == "row"


def test_show_matrix_writes_fractions_with_at_most_two_decimals():
    fig = plot.show_matrix(torch.tensor([[0.5, -1.25], [1 / 3, -0.001]]))
    assert _texts(fig) == ["0.5", "-1.25", "0.33", "0"]


def test_show_matrix_skips_numbers_on_large_or_unannotated_matrices():
    assert _texts(plot.show_matrix(torch.rand(3, 3), annotate=False)) == []
    big = plot.show_matrix(torch.rand(28, 28))
    assert _texts(big) == [] and len(big.axes) == 2  # the image and its colour bar


def test_signed_shading_is_centred_on_zero_with_red_positive():
    values = torch.tensor([[2.0, 0.0, -1.0]])
    image = plot.show_matrix(values, signed=True).axes[0].images[0]
    assert image.get_cmap().name == "RdBu_r" and image.get_clim() == (-2.0, 2.0)
    red, white, blue = image.to_rgba(np.array([2.0, 0.0, -2.0]))
    assert red[0] > red[2] and blue[2] > blue[0] and min(white[:3]) > 0.9
    texts = [t.get_color() for t in plot.show_matrix(values, signed=True).axes[0].texts]
    assert texts == ["white", "black", "black"]  # dark at both ends: only 2 is extreme
    maps = torch.stack([values.expand(3, 3), torch.rand(3, 3)])
    panels = plot.show_feature_maps(maps, signed=True).axes
    assert [ax.images[0].get_clim() for ax in panels][0] == (-2.0, 2.0)
    assert panels[1].images[0].get_clim()[0] == -panels[1].images[0].get_clim()[1]
    assert plot.show_matrix(values).axes[0].images[0].get_cmap().name == "Greys"


def test_unsigned_shading_starts_at_zero_so_white_means_zero():
    counts = plot.show_matrix(torch.tensor([[1.0, 4.0], [6.0, 9.0]])).axes[0].images[0]
    assert counts.get_clim() == (0.0, 9.0)
    assert plot.show_matrix(torch.tensor([[-1.0, 2.0]])).axes[0].images[0].get_clim() == (-1.0, 2.0)


def test_shared_feature_maps_use_one_scale_and_a_colour_bar():
    maps = torch.stack([torch.full((4, 4), 0.5), torch.arange(16.0).view(4, 4)])
    own = plot.show_feature_maps(maps)
    assert [ax.images[0].get_clim() for ax in own.axes] == [(0.0, 0.5), (0.0, 15.0)]
    shared = plot.show_feature_maps(maps, shared=True)
    panels, bar = shared.axes[:2], shared.axes[2:]
    assert [ax.images[0].get_clim() for ax in panels] == [(0.0, 15.0)] * 2
    assert len(bar) == 1 and bar[0].get_ylabel() == "activation"


@pytest.mark.parametrize("bad", [torch.rand(3), torch.rand(2, 3, 3)])
def test_show_matrix_rejects_non_matrices(bad):
    with pytest.raises(ValueError, match=r"X must be 2-D.*got shape"):
        plot.show_matrix(bad)


def test_show_images_captions_predictions_and_marks_wrong_ones_red():
    labels = torch.tensor([0, 1, 2, 3, 1])
    predictions = torch.tensor([0, 1, 3, 3, 2])
    fig = plot.show_images(torch.rand(5, 1, 8, 8), labels, class_names=NAMES,
                           predictions=predictions, ncols=3, title="Test set")
    assert len(fig.axes) == 5  # the sixth cell of the 2 × 3 grid is removed
    assert fig.get_suptitle() == "Test set"
    assert _titles(fig) == ["zero", "one", "three\n(true: two)", "three", "two\n(true: one)"]
    colours = [ax.title.get_color() for ax in fig.axes]
    assert colours == ["black", "black", plot.WRONG, "black", plot.WRONG]


def test_show_images_rescales_normalised_rgb_images_for_display():
    images = torch.randn(4, 3, 6, 6) * 3
    fig = plot.show_images(images, [0, 1, 2, 3])
    for ax in fig.axes:
        pixels = np.asarray(ax.images[0].get_array())
        assert pixels.shape == (6, 6, 3)
        assert pixels.min() == pytest.approx(0) and pixels.max() == pytest.approx(1)
    assert _titles(fig) == ["0", "1", "2", "3"]


def test_show_images_keeps_images_already_in_unit_range():
    images = torch.full((1, 1, 4, 4), 0.25)
    pixels = np.asarray(plot.show_images(images).axes[0].images[0].get_array())
    assert np.allclose(pixels, 0.25)


@pytest.mark.parametrize("images, kwargs, message", [
    (torch.rand(4, 28, 28), {}, r"images must be 4-D"),
    (torch.rand(4, 2, 8, 8), {}, r"with C 1 or 3, got shape \(4, 2, 8, 8\)"),
    (torch.rand(4, 1, 8, 8), {"labels": [0, 1, 2]}, r"labels has 3 entries but there are 4"),
    (torch.rand(2, 1, 8, 8), {"predictions": [0, 1, 2]}, r"predictions has 3 entries"),
    (torch.rand(2, 1, 8, 8), {"labels": [0, 4], "class_names": NAMES}, r"\[0, 4\)"),
])
def test_show_images_rejects_bad_input(images, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plot.show_images(images, **kwargs)


@pytest.mark.parametrize("show, empty", [(plot.show_images, torch.rand(0, 1, 8, 8)),
                                          (plot.show_feature_maps, torch.rand(0, 5, 5)),
                                          (plot.show_kernels, torch.rand(0, 1, 3, 3)),
                                          (plot.show_matrix, torch.rand(0, 3))])
def test_empty_input_is_rejected(show, empty):
    with pytest.raises(ValueError, match="is empty"):
        show(empty)


def test_show_images_rejects_fractional_labels():
    with pytest.raises(TypeError, match=r"labels must be integer class indices"):
        plot.show_images(torch.rand(2, 1, 8, 8), torch.tensor([0.0, 1.0]))


def test_show_feature_maps_gives_one_titled_panel_per_channel():
    fig = plot.show_feature_maps(torch.rand(10, 5, 5), title="conv1")
    assert _titles(fig) == [f"channel {c}" for c in range(10)]
    assert fig.get_suptitle() == "conv1"
    with pytest.raises(ValueError, match=r"maps must be 3-D.*maps\[0\]"):
        plot.show_feature_maps(torch.rand(1, 10, 5, 5))


def test_show_kernels_grid_has_a_panel_per_kernel_and_one_colour_bar():
    fig = plot.show_kernels(torch.randn(4, 3, 3, 3))
    assert len(fig.axes) == 4 * 3 + 1
    assert _titles(fig)[:4] == ["out 0, in 0", "out 0, in 1", "out 0, in 2", "out 1, in 0"]
    assert fig.axes[-1].get_ylabel() == "weight"
    first_layer = plot.show_kernels(models.LeNet().net[0].weight)
    assert len(first_layer.axes) == 6 + 1
    with pytest.raises(ValueError, match=r"weight must be 4-D"):
        plot.show_kernels(torch.randn(3, 3, 3))


def test_plot_history_draws_validation_only_when_present():
    with_val = plot.plot_history(_history(), title="run")
    assert _titles(with_val) == ["loss", "accuracy"]
    assert [len(ax.lines) for ax in with_val.axes] == [2, 2]
    assert [ax.get_xlabel() for ax in with_val.axes] == ["epoch", "epoch"]
    assert [len(ax.lines) for ax in plot.plot_history(_history(with_val=False)).axes] == [1, 1]
    nan_val = _history()
    nan_val[["val_loss", "val_acc"]] = float("nan")
    assert [len(ax.lines) for ax in plot.plot_history(nan_val).axes] == [1, 1]


def test_plot_history_names_what_each_curve_measures_in_one_legend_below_the_panels():
    fig = plot.plot_history(_history())
    assert [ax.get_legend() for ax in fig.axes] == [None, None]
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "train (running mean over the epoch)", "validation (end of the epoch)"]
    relabelled = plot.plot_history(_history(with_val=False), train_label="train (augmented)")
    assert [t.get_text() for t in relabelled.legends[0].get_texts()] == ["train (augmented)"]


def test_label_colour_switches_at_the_middle_of_the_scale_that_starts_at_zero():
    counts = plot.show_matrix(torch.tensor([[4.0, 6.0, 9.0]]))
    assert [t.get_color() for t in counts.axes[0].texts] == ["black", "white", "white"]
    cm = plot.plot_confusion_matrix(torch.tensor([[6, 4], [1, 9]]), NAMES[:2])
    assert cm.axes[0].images[0].get_clim() == (0.0, 9.0)
    assert [t.get_color() for t in cm.axes[0].texts] == ["white", "black", "black", "white"]


def test_show_panels_shades_each_named_panel_by_its_kind():
    image, edges = torch.tensor([[0.0, 0.5], [1.0, 0.25]]), torch.tensor([[-3.0, 1.0]])
    fig = plot.show_panels({"image": image, "edges": edges}, "image and edges",
                           signed=["edges"])
    grey, signed = (ax.images[0] for ax in fig.axes)
    assert _titles(fig) == ["image", "edges"] and fig.get_suptitle() == "image and edges"
    assert grey.get_cmap().name == "Greys" and grey.get_clim() == (0.0, 1.0)
    assert signed.get_cmap().name == "RdBu_r" and signed.get_clim() == (-3.0, 3.0)
    with pytest.raises(ValueError, match=r"do not exist: \['edge'\]"):
        plot.show_panels({"edges": edges}, "t", signed=["edge"])
    with pytest.raises(ValueError, match="panel 'image' must be 2-D"):
        plot.show_panels({"image": torch.rand(1, 2, 2)}, "t")


def test_plot_one_cycle_draws_each_traced_setting_against_step_or_epoch():
    trace = pd.DataFrame({"lr": [0.008, 0.2, 0.1, 1e-6], "beta1": [0.95, 0.85, 0.9, 0.95]})
    fig = plot.plot_one_cycle(trace, "AdamW", steps_per_epoch=2)
    assert _titles(fig) == ["learning rate", "Adam's β₁"]
    lines = [ax.lines[0] for ax in fig.axes]
    assert list(lines[0].get_xdata()) == [0.0, 0.5, 1.0, 1.5]
    assert list(lines[1].get_ydata()) == [0.95, 0.85, 0.9, 0.95]
    assert fig.axes[0].get_xlabel() == "epoch"
    assert plot.plot_one_cycle(trace, "t").axes[0].get_xlabel() == "step (batch)"
    with pytest.raises(ValueError, match="trace_one_cycle's DataFrame"):
        plot.plot_one_cycle(trace.drop(columns="lr"), "t")


def test_compare_histories_draws_one_metric_per_named_run_on_one_axis():
    slow = _history()
    fast = _history().assign(val_acc=[0.8, 0.85, 0.9], val_loss=[0.5, 0.4, 0.3])
    fig = plot.compare_histories({"slow": slow, "fast": fast}, "two runs")
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.lines] == ["slow", "fast"]
    assert [list(line.get_ydata()) for line in ax.lines] == [[0.65, 0.7, 0.75],
                                                              [0.8, 0.85, 0.9]]
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3]
    assert (ax.get_title(), ax.get_ylabel()) == ("validation accuracy", "validation accuracy")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["slow", "fast"]
    losses = plot.compare_histories({"fast": fast}, "loss", metric="val_loss")
    assert list(losses.axes[0].lines[0].get_ydata()) == [0.5, 0.4, 0.3]


def test_compare_histories_rejects_what_it_cannot_draw():
    with pytest.raises(ValueError, match="histories is empty"):
        plot.compare_histories({}, "none")
    with pytest.raises(ValueError, match=r"'bare' needs the columns epoch and val_acc"):
        plot.compare_histories({"bare": _history(with_val=False)}, "t")
    with pytest.raises(ValueError, match="'empty' must be fit's DataFrame"):
        plot.compare_histories({"empty": _history().iloc[:0]}, "t")


def test_plot_history_rejects_what_fit_does_not_return():
    with pytest.raises(ValueError, match=r"missing columns \['train_acc'\]"):
        plot.plot_history(_history().drop(columns="train_acc"))
    with pytest.raises(ValueError, match="0 rows"):
        plot.plot_history(_history().iloc[:0])
    with pytest.raises(TypeError, match="DataFrame"):
        plot.plot_history(_history().to_dict())


def test_plot_confusion_matrix_annotates_every_count():
    cm = torch.tensor([[5, 1, 0, 0], [2, 7, 0, 1], [0, 0, 9, 0], [0, 3, 0, 4]])
    fig = plot.plot_confusion_matrix(cm, NAMES, title="Validation")
    ax = fig.axes[0]
    assert ax.get_title() == "Validation"
    assert _texts(fig) == [str(v) for v in cm.flatten().tolist()]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(NAMES)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    with pytest.raises(ValueError, match=r"shape \(4, 4\) and 3 class names"):
        plot.plot_confusion_matrix(cm, NAMES[:3])


def test_plot_architecture_shows_each_layer_with_its_output_shape():
    fig = plot.plot_architecture(models.LeNet(), (1, 1, 28, 28))
    ax = fig.axes[0]
    assert len(ax.patches) == 1 + 12  # the input and LeNet's twelve layers
    texts = _texts(fig)
    assert texts.count("Conv2d") == 2 and texts.count("Sigmoid") == 4
    assert {"1 × 28 × 28", "6 × 28 × 28", "16 × 5 × 5", "400", "48,120"} <= set(texts)
    assert "61,706" in ax.get_title()
    with pytest.raises(ValueError, match=r"expects \(N, 1, H, W\)"):
        plot.plot_architecture(models.LeNet(), (3, 28, 28))


COUNTS = torch.tensor([[6, 2, 0, 0], [1, 2, 0, 1], [0, 0, 5, 0], [0, 3, 0, 0]])


def test_plot_confusion_matrix_writes_fractions_of_a_float_matrix():
    fractions = COUNTS / COUNTS.sum(dim=1, keepdim=True)
    fig = plot.plot_confusion_matrix(fractions, NAMES)
    texts = _texts(fig)
    assert texts[:2] == ["0.75", "0.25"] and "0.50" in texts
    assert texts != ["0"] * 16
    assert np.allclose(fig.axes[0].images[0].get_array(), fractions.numpy())
    assert fig.axes[1].get_ylabel() == "fraction"


@pytest.mark.parametrize("cm, message", [
    (torch.full((4, 4), float("nan")), r"cm must hold finite values"),
])
def test_plot_confusion_matrix_refuses_what_makes_no_sense(cm, message):
    with pytest.raises(ValueError, match=message):
        plot.plot_confusion_matrix(cm, NAMES)
