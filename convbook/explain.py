"""Which pixels a trained classifier's decision depends on: saliency, occlusion and Grad-CAM
maps, ``(H, W)`` per image, computed in evaluation mode (chapter 10).
"""
from __future__ import annotations

import torch
from torch import nn

from ._torch import check_labels, check_model, eval_mode, model_device
from ._args import IntOrPair, pair

__all__ = ["saliency", "occlusion", "grad_cam"]


def _images(images, name: str) -> tuple[torch.Tensor, bool]:
    """``(N, C, H, W)`` images, and whether a single ``(C, H, W)`` image was given."""
    if images.dim() not in (3, 4):
        raise ValueError(f"{name} must be (C, H, W) or (N, C, H, W), got shape "
                         f"{tuple(images.shape)}")
    single = images.dim() == 3
    return (images[None] if single else images).detach(), single


def _scores(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    scores = model(x)
    if scores.dim() != 2 or scores.shape[0] != x.shape[0]:
        raise ValueError(f"model must return (N, num_classes) scores, got shape "
                         f"{tuple(scores.shape)} for {x.shape[0]} images")
    return scores


def _targets(target, scores: torch.Tensor) -> torch.Tensor:
    """One class index per image: the prediction when ``target`` is None."""
    n, k = scores.shape
    if target is None:
        return scores.argmax(dim=1)
    t = torch.as_tensor(target).cpu()  # checked on the CPU, then moved
    t = check_labels(t.expand(n) if t.dim() == 0 else t, k, name="target", count=n)
    return t.to(scores.device)


def saliency(model: nn.Module, images: torch.Tensor, target=None) -> torch.Tensor:
    """``|d score[target] / d pixel|``, maximum over channels (Simonyan et al., 2014); target
    None means each image's predicted class (chapter 10)."""
    batch, single = _images(images, "images")
    with eval_mode(model), torch.enable_grad():
        x = batch.to(model_device(model)).requires_grad_(True)
        scores = _scores(model, x)
        chosen = scores.gather(1, _targets(target, scores)[:, None])
        (grad,) = torch.autograd.grad(chosen.sum(), x)
    maps = grad.abs().amax(dim=1).cpu()
    return maps[0] if single else maps


def _corners(size: int, patch: int, stride: int) -> list[int]:
    """Patch starts along one side, the last one flush with the border so all is covered."""
    starts = list(range(0, size - patch + 1, stride))
    return starts if starts[-1] == size - patch else starts + [size - patch]


@torch.no_grad()
def occlusion(model: nn.Module, image: torch.Tensor, target=None, *,
              patch: IntOrPair = 4, stride: IntOrPair = 2) -> torch.Tensor:
    """Per pixel, the mean drop in the target's probability when a patch covering it is
    zeroed (Zeiler and Fergus, 2014), chapter 10."""
    batch, single = _images(image, "image")
    (ph, pw), (sh, sw) = pair(patch, "patch"), pair(stride, "stride")
    h, w = batch.shape[-2:]
    if not (1 <= ph <= h and 1 <= pw <= w) or sh < 1 or sw < 1:
        raise ValueError(f"need 1 <= patch <= image size and stride >= 1; got patch "
                         f"{(ph, pw)}, stride {(sh, sw)} for a {h} × {w} image")
    corners = [(r, c) for r in _corners(h, ph, sh) for c in _corners(w, pw, sw)]
    with eval_mode(model):
        x = batch.to(model_device(model))
        scores = _scores(model, x)
        targets = _targets(target, scores)
        base = scores.softmax(dim=1).gather(1, targets[:, None])[:, 0]
        maps = []
        for n in range(len(x)):
            occluded = _scores(model, _occluded(x[n], corners, (ph, pw)))
            drops = base[n] - occluded.softmax(dim=1)[:, targets[n]]
            maps.append(_spread(drops, corners, (ph, pw), (h, w)))
    maps = torch.stack(maps).cpu()
    return maps[0] if single else maps


def _occluded(image: torch.Tensor, corners: list[tuple[int, int]],
              patch: tuple[int, int]) -> torch.Tensor:
    """One copy of ``image`` per corner, with that patch set to zero."""
    copies = image.repeat(len(corners), 1, 1, 1)
    for k, (r, c) in enumerate(corners):
        copies[k, :, r:r + patch[0], c:c + patch[1]] = 0.0
    return copies


def _spread(drops: torch.Tensor, corners: list[tuple[int, int]], patch: tuple[int, int],
            size: tuple[int, int]) -> torch.Tensor:
    """Per-pixel mean of the drops of the patches covering it."""
    total = drops.new_zeros(size)
    count = drops.new_zeros(size)
    for drop, (r, c) in zip(drops, corners):
        total[r:r + patch[0], c:c + patch[1]] += drop
        count[r:r + patch[0], c:c + patch[1]] += 1
    return total / count


def _layer(model: nn.Module, layer: str) -> nn.Module:
    """The submodule called ``layer``, or a ValueError that lists the names there are."""
    check_model(model)
    modules = dict(model.named_modules())
    if not isinstance(layer, str) or not layer or layer not in modules:
        names = ", ".join(name for name in modules if name)
        raise ValueError(f"model has no layer named {layer!r}; its layers are: {names}")
    return modules[layer]


def grad_cam(model: nn.Module, images: torch.Tensor, target=None, *,
             layer: str) -> torch.Tensor:
    """The maps of ``layer`` (a name from ``model.named_modules()``) weighted by their mean
    gradient, summed, kept where positive, upsampled (Selvaraju et al., 2017): chapter 10."""
    module = _layer(model, layer)
    batch, single = _images(images, "images")
    captured = []
    hook = module.register_forward_hook(lambda _module, _inputs, output: captured.append(output))
    try:
        with eval_mode(model), torch.enable_grad():
            scores = _scores(model, batch.to(model_device(model)))
            if len(captured) != 1 or not isinstance(captured[0], torch.Tensor) \
                    or captured[0].dim() != 4:
                shapes = [tuple(c.shape) for c in captured if isinstance(c, torch.Tensor)]
                raise ValueError(f"layer {layer!r} must run once and return (N, K, h, w) "
                                 f"maps, got {shapes or captured}")
            maps = captured[0]
            chosen = scores.gather(1, _targets(target, scores)[:, None])
            (grad,) = torch.autograd.grad(chosen.sum(), maps)
    finally:
        hook.remove()
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = (weights * maps.detach()).sum(dim=1, keepdim=True).clamp_min(0)
    cam = nn.functional.interpolate(cam, size=batch.shape[-2:], mode="bilinear",
                                    align_corners=False)[:, 0].cpu()
    return cam[0] if single else cam
