"""Tests of convbook.explain and its figure: a model that only looks at the top-left quadrant
must light up that quadrant and nothing else, for saliency and for occlusion; Grad-CAM
against a hand computation on a tiny network; show_attribution's shared scales."""
import pytest
import torch
from torch import nn

from convbook import explain, plot

SIZE = 8
QUADRANT = (slice(0, SIZE // 2), slice(0, SIZE // 2))


class QuadrantNet(nn.Module):
    """Class 0's logit is a weighted sum of the top-left quadrant; class 1's is the bias 4.

    Batch norm and dropout make the output depend on the mode: explanations must use
    evaluation mode (where batch norm, at its initial running statistics, divides by
    sqrt(1 + eps) and dropout does nothing).
    """

    def __init__(self, weights=(0.25,)):
        super().__init__()
        channels = len(weights)
        self.norm = nn.BatchNorm2d(channels)
        self.drop = nn.Dropout(0.5)
        self.linear = nn.Linear(channels * SIZE * SIZE, 2)
        w = torch.zeros(2, channels, SIZE, SIZE)
        for c, value in enumerate(weights):
            w[0, c][QUADRANT] = value
        with torch.no_grad():
            self.linear.weight.copy_(w.flatten(1))
            self.linear.bias.copy_(torch.tensor([0.0, 4.0]))

    def forward(self, x):
        return self.linear(self.drop(self.norm(x)).flatten(1))


def _quadrant_mask() -> torch.Tensor:
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    mask[QUADRANT] = True
    return mask


def test_saliency_lights_up_only_the_quadrant_with_the_largest_channel_weight():
    model = QuadrantNet(weights=(1.0, -2.0, 0.5))
    images = torch.rand(2, 3, SIZE, SIZE)
    images[:, 0] += 1  # class 0 wins: its logit is at least 16 > 4
    images[:, 1] = 0
    maps = explain.saliency(model, images)
    expected = torch.where(_quadrant_mask(), 2.0 / (1 + model.norm.eps) ** 0.5, 0.0)
    assert maps.shape == (2, SIZE, SIZE)
    torch.testing.assert_close(maps, expected.expand(2, SIZE, SIZE))


def test_saliency_of_the_predicted_class_and_of_a_batch():
    model = QuadrantNet()
    bright, dark = torch.full((1, SIZE, SIZE), 2.0), torch.zeros(1, SIZE, SIZE)
    assert model.eval()(torch.stack([bright, dark])).argmax(1).tolist() == [0, 1]
    maps = explain.saliency(model, torch.stack([bright, dark]))
    assert (maps[0] > 0).equal(_quadrant_mask())
    assert maps[1].eq(0).all()  # class 1's score ignores the image
    torch.testing.assert_close(explain.saliency(model, bright[None])[0], maps[0])


def test_explanations_use_eval_mode_restore_the_mode_and_leave_grads_alone():
    model = QuadrantNet().train()
    images = torch.rand(3, 1, SIZE, SIZE) + 0.5
    first = explain.saliency(model, images)
    assert model.training
    torch.testing.assert_close(explain.saliency(model, images), first)
    assert all(p.grad is None for p in model.parameters())
    explain.occlusion(model, images[:1], patch=4, stride=4)
    assert model.training
    evaluated = QuadrantNet().eval()
    explain.saliency(evaluated, images)
    assert not evaluated.training


ROUNDING = 1e-6  # far below any real drop in probability (> 0.04 here)


def _p0(model, x):
    with torch.no_grad():
        return model.eval()(x).softmax(1)[:, 0]


def test_occlusion_with_aligned_patches_is_the_probability_drop_on_the_quadrant_only():
    model = QuadrantNet()
    image = torch.rand(1, SIZE, SIZE) + 1.5  # class 0 wins: its logit is at least 6 > 4
    heat = explain.occlusion(model, image[None], patch=4, stride=4)[0]
    hidden = image.clone()
    hidden[:, :4, :4] = 0.0
    drop = (_p0(model, image[None]) - _p0(model, hidden[None])).item()
    assert drop > 0.1
    torch.testing.assert_close(heat[QUADRANT], torch.full((4, 4), drop))
    # Off the quadrant the model's logits do not change; batched and single forward passes
    # may still round the probability differently in its last bit (float32 ulp ~ 6e-8).
    assert heat[~_quadrant_mask()].abs().max() < ROUNDING


def test_occlusion_with_overlapping_patches_is_zero_where_no_patch_touches_the_quadrant():
    model = QuadrantNet()
    images = torch.rand(2, 1, SIZE, SIZE) + 1.5
    heat = explain.occlusion(model, images, patch=4, stride=2)
    assert heat.shape == (2, SIZE, SIZE)
    touched = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    touched[:6, :6] = True  # patches start at 0, 2, 4; only those at 0 and 2 reach rows 0-3
    assert (heat[:, touched] > ROUNDING).all() and heat[:, ~touched].abs().max() < ROUNDING
    for n in range(2):
        torch.testing.assert_close(explain.occlusion(model, images[n:n + 1], patch=4,
                                                     stride=2)[0], heat[n])
        peak = divmod(heat[n].argmax().item(), SIZE)
        assert _quadrant_mask()[peak]


def test_occlusion_covers_the_border_when_the_stride_does_not_divide_the_size():
    model = QuadrantNet()
    heat = explain.occlusion(model, torch.rand(1, 1, SIZE, SIZE) + 1.5, patch=3, stride=3)[0]
    assert torch.isfinite(heat).all() and (heat[:4, :4] > 0).all()


@pytest.mark.parametrize("call, error, message", [
    (lambda m: explain.saliency(m, torch.rand(1, SIZE, SIZE)), ValueError,
     r"\(N, C, H, W\), got shape \(1, 8, 8\); for one image pass image\[None\]"),
    (lambda m: explain.saliency(lambda x: x, torch.rand(1, 1, SIZE, SIZE)), TypeError,
     "nn.Module"),
    (lambda m: explain.saliency(nn.Flatten(0), torch.rand(1, 1, SIZE, SIZE)), ValueError,
     r"\(N, num_classes\)"),
    (lambda m: explain.occlusion(m, torch.rand(1, 1, SIZE, SIZE), patch=9), ValueError,
     "patch <= image size"),
    (lambda m: explain.occlusion(m, torch.rand(1, 1, SIZE, SIZE), stride=0), ValueError,
     "stride >= 1"),
])
def test_bad_arguments_fail_clearly(call, error, message):
    with pytest.raises(error, match=message):
        call(QuadrantNet())


class TinyCamNet(nn.Module):
    """conv (stride 2) -> ReLU -> global average pooling -> linear: a class score that is a
    linear function of the ReLU maps, so Grad-CAM can be computed by hand."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, stride=2, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(3, 4)

    def forward(self, x):
        return self.linear(self.pool(self.relu(self.conv(x))).flatten(1))


def test_grad_cam_matches_a_hand_computation_on_a_tiny_network():
    generator = torch.Generator().manual_seed(0)
    model = TinyCamNet()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    images = torch.randn(2, 1, SIZE, SIZE, generator=generator)
    cam = explain.grad_cam(model, images, layer="relu")
    with torch.no_grad():
        maps = model.relu(model.conv(images))  # (2, 3, 4, 4)
        predicted = model(images).argmax(1)
    h, w = maps.shape[-2:]
    # d score_c / d A_k(i, j) = W[c, k] / (h w) at every position: that is each map's weight
    weights = model.linear.weight.detach()[predicted] / (h * w)
    by_hand = torch.relu((weights[:, :, None, None] * maps).sum(dim=1, keepdim=True))
    expected = nn.functional.interpolate(by_hand, size=(SIZE, SIZE), mode="bilinear",
                                         align_corners=False)[:, 0]
    assert cam.shape == (2, SIZE, SIZE)
    torch.testing.assert_close(cam, expected)
    assert (cam >= 0).all() and (cam > 0).any()
    torch.testing.assert_close(explain.grad_cam(model, images[1:], layer="relu")[0], cam[1])


def test_grad_cam_of_the_predicted_class_is_never_negative_and_keeps_the_mode():
    model = TinyCamNet().train()
    images = torch.randn(5, 1, SIZE, SIZE)
    cam = explain.grad_cam(model, images, layer="conv")
    assert cam.shape == (5, SIZE, SIZE) and (cam >= 0).all()
    assert model.training and all(p.grad is None for p in model.parameters())
    assert not model.conv._forward_hooks  # the hook is removed again


@pytest.mark.parametrize("layer, message", [
    ("layer9", "no layer named 'layer9'; its layers are: conv, relu, pool, linear"),
    ("", "no layer named ''"),
    ("linear", r"must run once and return \(N, K, h, w\) maps, got \[\(2, 4\)\]"),
])
def test_grad_cam_names_a_missing_or_unsuitable_layer(layer, message):
    with pytest.raises(ValueError, match=message):
        explain.grad_cam(TinyCamNet(), torch.rand(2, 1, SIZE, SIZE), layer=layer)


def test_show_attribution_draws_each_kind_of_map_on_one_shared_scale_with_a_colour_bar():
    model = QuadrantNet()
    images = torch.rand(3, 1, SIZE, SIZE)
    maps = explain.saliency(model, images + 1.5)  # class 0 wins: logit at least 6 > 4
    maps = maps * torch.tensor([1.0, 2.0, 3.0])[:, None, None]
    fig = plot.show_attribution(images, maps, labels=[0, 1, 1], predictions=[0, 0, 1],
                                class_names=["left", "right"], map_name="saliency")
    assert fig.get_suptitle() == "Saliency maps of 3 images"
    assert fig.get_size_inches()[0] <= plot.MAX_WIDTH
    panels = [ax for ax in fig.axes if ax.images]
    tops, bottoms = panels[:3], panels[3:]
    assert len(panels) == 6
    for k, bottom in enumerate(bottoms):
        torch.testing.assert_close(torch.as_tensor(bottom.images[0].get_array()), maps[k])
        assert bottom.images[0].get_clim() == (0.0, maps.max().item())  # one shared scale
        assert bottom.images[0].get_cmap().name == "viridis"
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and bars[0].get_ylabel() == "saliency"
    assert [ax.get_title() for ax in tops] == ["left", "left\n(true: right)", "right"]
    assert tops[1].title.get_color() == plot.WRONG
    with pytest.raises(ValueError, match="maps must be"):
        plot.show_attribution(images, maps[:2])


def test_show_attribution_rows_of_two_kinds_and_a_signed_scale():
    images = torch.rand(10, 3, SIZE, SIZE)
    signed = torch.randn(10, SIZE, SIZE)
    fig = plot.show_attribution(images, {"saliency": signed.abs(), "occlusion": signed})
    assert fig.get_suptitle() == "Saliency and occlusion maps of 10 images"
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 30  # 10 images, each with two maps
    limit = signed.abs().max().item()
    occlusion = [ax for ax in panels if ax.images[0].get_cmap().name == "RdBu_r"]
    assert len(occlusion) == 10
    assert all(ax.images[0].get_clim() == (-limit, limit) for ax in occlusion)
    bars = [ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert bars == ["saliency", "occlusion"]
