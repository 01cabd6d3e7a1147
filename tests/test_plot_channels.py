"""Tests of convbook.plot.show_channel_stats (chapter 7's batch-norm figure): the points and
bars drawn are each channel's mean and ± one standard deviation of the tensors passed."""
import numpy as np
import pytest
import torch

from convbook import plot


def _drawn(ax):
    """(means, lower ends, upper ends) of the one errorbar series on ``ax``."""
    container = ax.containers[0]
    means = container.lines[0].get_ydata()
    segments = container.lines[2][0].get_segments()
    return np.asarray(means), np.array([s[0][1] for s in segments]), \
        np.array([s[1][1] for s in segments])


def test_points_and_bars_are_each_channels_mean_and_std():
    gen = torch.Generator().manual_seed(0)
    scale = torch.tensor([1.0, 3.0, 0.5]).view(1, 3, 1, 1)
    shift = torch.tensor([-2.0, 0.0, 4.0]).view(1, 3, 1, 1)
    conv = torch.randn(16, 3, 5, 5, generator=gen) * scale + shift
    dense = torch.randn(32, 4, generator=gen) * 2
    fig = plot.show_channel_stats({"conv": conv, "dense": dense}, title="Two layers")
    assert [ax.get_title() for ax in fig.axes] == ["conv", "dense"]
    assert fig._suptitle.get_text() == "Two layers"
    for ax, values in zip(fig.axes, [conv, dense]):
        per_channel = values.transpose(0, 1).reshape(values.shape[1], -1)
        mean, std = per_channel.mean(1).numpy(), per_channel.std(1, correction=0).numpy()
        means, low, high = _drawn(ax)
        np.testing.assert_allclose(means, mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(low, mean - std, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(high, mean + std, rtol=1e-5, atol=1e-6)
    # The first layer's channels were built with means -2, 0, 4: the figure shows them.
    np.testing.assert_allclose(_drawn(fig.axes[0])[0], [-2, 0, 4], atol=0.5)
    assert fig.axes[0].get_shared_y_axes().joined(fig.axes[0], fig.axes[1])


@pytest.mark.parametrize("bad, message", [
    ({"x": torch.zeros(2, 3, 4)}, r"activations\['x'\] must be \(N, C\) or \(N, C, H, W\)"),
    ({"x": torch.zeros(1, 3)}, "at least two values per channel"),
])
def test_bad_input_is_refused_with_a_clear_error(bad, message):
    with pytest.raises(ValueError, match=message):
        plot.show_channel_stats(bad)
