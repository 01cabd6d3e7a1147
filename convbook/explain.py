"""Which pixels a trained classifier's decision depends on: saliency, occlusion and Grad-CAM
maps, ``(N, H, W)`` for the predicted class of each image, in evaluation mode (chapter 10)."""
from __future__ import annotations

import torch
from torch import nn

from ._torch import check_model, eval_mode, model_device
from ._args import IntOrPair, pair

__all__ = ["saliency", "occlusion", "grad_cam"]


def _images(images: torch.Tensor) -> torch.Tensor:
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}; "
                         f"for one image pass image[None]")
    return images.detach()


def _scores(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    scores = model(x)
    if scores.dim() != 2 or scores.shape[0] != x.shape[0]:
        raise ValueError(f"model must return (N, num_classes) scores, got shape "
                         f"{tuple(scores.shape)} for {x.shape[0]} images")
    return scores


def saliency(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``|d score / d pixel|`` of the predicted class, maximum over channels (Simonyan et al.,
    2014), chapter 10."""
    batch = _images(images)
    with eval_mode(model), torch.enable_grad():
        x = batch.to(model_device(model)).requires_grad_(True)
        scores = _scores(model, x)
        chosen = scores.gather(1, scores.argmax(dim=1)[:, None])
        (grad,) = torch.autograd.grad(chosen.sum(), x)
    return grad.abs().amax(dim=1).cpu()


def _corners(size: int, patch: int, stride: int) -> list[int]:
    """Patch starts along one side, the last one flush with the border so all is covered."""
    starts = list(range(0, size - patch + 1, stride))
    return starts if starts[-1] == size - patch else starts + [size - patch]


@torch.no_grad()
def occlusion(model: nn.Module, images: torch.Tensor, *, patch: IntOrPair = 4,
              stride: IntOrPair = 2) -> torch.Tensor:
    """Per pixel, the mean drop in the predicted class's probability when a patch covering it
    is zeroed (Zeiler and Fergus, 2014), chapter 10."""
    batch = _images(images)
    (ph, pw), (sh, sw) = pair(patch, "patch"), pair(stride, "stride")
    h, w = batch.shape[-2:]
    if not (1 <= ph <= h and 1 <= pw <= w) or sh < 1 or sw < 1:
        raise ValueError(f"need 1 <= patch <= image size and stride >= 1; got patch "
                         f"{(ph, pw)}, stride {(sh, sw)} for a {h} × {w} image")
    corners = [(r, c) for r in _corners(h, ph, sh) for c in _corners(w, pw, sw)]
    with eval_mode(model):
        x = batch.to(model_device(model))
        scores = _scores(model, x)
        targets = scores.argmax(dim=1)
        base = scores.softmax(dim=1).gather(1, targets[:, None])[:, 0]
        maps = []
        for n in range(len(x)):
            copies = x[n].repeat(len(corners), 1, 1, 1)  # one per patch, that patch zeroed
            for k, (r, c) in enumerate(corners):
                copies[k, :, r:r + ph, c:c + pw] = 0.0
            drops = base[n] - _scores(model, copies).softmax(dim=1)[:, targets[n]]
            total = drops.new_zeros((h, w))  # each pixel: the mean drop of the patches on it
            count = drops.new_zeros((h, w))
            for drop, (r, c) in zip(drops, corners):
                total[r:r + ph, c:c + pw] += drop
                count[r:r + ph, c:c + pw] += 1
            maps.append(total / count)
    return torch.stack(maps).cpu()


def grad_cam(model: nn.Module, images: torch.Tensor, *, layer: str) -> torch.Tensor:
    """The maps of ``layer`` (a name from ``model.named_modules()``) weighted by their mean
    gradient, summed, kept where positive, upsampled (Selvaraju et al., 2017): chapter 10."""
    check_model(model)
    modules = dict(model.named_modules())
    if not layer or layer not in modules:
        names = ", ".join(name for name in modules if name)
        raise ValueError(f"model has no layer named {layer!r}; its layers are: {names}")
    batch = _images(images)
    captured = []
    hook = modules[layer].register_forward_hook(
        lambda _module, _inputs, output: captured.append(output))
    try:
        with eval_mode(model), torch.enable_grad():
            scores = _scores(model, batch.to(model_device(model)))
            if len(captured) != 1 or not isinstance(captured[0], torch.Tensor) \
                    or captured[0].dim() != 4:
                shapes = [tuple(c.shape) for c in captured if isinstance(c, torch.Tensor)]
                raise ValueError(f"layer {layer!r} must run once and return (N, K, h, w) "
                                 f"maps, got {shapes or captured}")
            maps = captured[0]
            chosen = scores.gather(1, scores.argmax(dim=1)[:, None])
            (grad,) = torch.autograd.grad(chosen.sum(), maps)
    finally:
        hook.remove()
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = (weights * maps.detach()).sum(dim=1, keepdim=True).clamp_min(0)
    return nn.functional.interpolate(cam, size=batch.shape[-2:], mode="bilinear",
                                     align_corners=False)[:, 0].cpu()
