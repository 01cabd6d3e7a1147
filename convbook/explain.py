"""convbook.explain — which pixels a trained classifier's decision depends on (chapter 9).

Two standard attribution maps, each ``(H, W)`` per image, larger meaning "matters more":

- ``saliency``: the gradient of the class score (the logit) with respect to the input,
  in absolute value and maximised over colour channels (Simonyan, Vedaldi and Zisserman,
  2014). One backward pass; shows where a small change would move the score most.
- ``occlusion``: how much the class *probability* drops when a square patch of the image is
  replaced by ``fill``, slid over the image (Zeiler and Fergus, 2014). Many forward passes;
  shows which regions the decision actually needs.

Both put the model in evaluation mode (dropout off, batch norm on its running statistics,
so each image is explained on its own) and restore its mode afterwards.
"""
from __future__ import annotations

import torch
from torch import nn

from .ops import IntOrPair, _pair

__all__ = ["saliency", "occlusion"]


def _images(images, name: str) -> tuple[torch.Tensor, bool]:
    """``(N, C, H, W)`` float images, and whether a single ``(C, H, W)`` image was given."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() not in (3, 4) or images.numel() == 0:
        raise ValueError(f"{name} must be (C, H, W) or (N, C, H, W) and non-empty, "
                         f"got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be floating point, got dtype {images.dtype}")
    single = images.dim() == 3
    return (images[None] if single else images).detach(), single


def _device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


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
    t = torch.as_tensor(target, device=scores.device)
    if t.is_floating_point() or t.dtype == torch.bool:
        raise TypeError(f"target must be integer class indices, got dtype {t.dtype}")
    t = t.long().expand(n) if t.dim() == 0 else t.long().flatten()
    if len(t) != n:
        raise ValueError(f"target has {len(t)} entries but there are {n} images")
    if t.min() < 0 or t.max() >= k:
        raise ValueError(f"target must lie in [0, {k}) for a model with {k} classes, "
                         f"got {t.tolist()}")
    return t


class _EvalMode:
    """``with _EvalMode(model):`` — evaluation mode inside, the model's own mode after."""

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model, self.training = model, model.training

    def __enter__(self) -> nn.Module:
        return self.model.eval()

    def __exit__(self, *exc) -> None:
        self.model.train(self.training)


def saliency(model: nn.Module, images: torch.Tensor, target=None) -> torch.Tensor:
    """Gradient saliency: ``|d score[target] / d pixel|``, maximum over channels (chapter 9).

    ``images`` is ``(N, C, H, W)`` (or one ``(C, H, W)`` image); ``target`` is None (each
    image's predicted class), one class index for all, or one per image. Returns a CPU
    tensor ``(N, H, W)`` (or ``(H, W)``). The model's own ``.grad`` fields are untouched.
    """
    batch, single = _images(images, "images")
    with _EvalMode(model), torch.enable_grad():
        x = batch.to(_device(model)).requires_grad_(True)
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
              patch: IntOrPair = 4, stride: IntOrPair = 2, fill: float = 0.0,
              batch_size: int = 256) -> torch.Tensor:
    """Occlusion sensitivity: the drop in the target's probability per pixel (chapter 9).

    A ``patch``-sized square of every channel is set to ``fill`` at positions ``stride``
    apart (the last flush with the border), and the model's softmax probability of
    ``target`` (default: the predicted class of the intact image) is measured again. Each
    pixel's value is the mean drop over the patches that covered it: positive where hiding
    the region hurts the decision, negative where it helps. ``image`` is ``(C, H, W)`` or a
    batch ``(N, C, H, W)``; returns a CPU tensor ``(H, W)`` or ``(N, H, W)``.
    """
    batch, single = _images(image, "image")
    (ph, pw), (sh, sw) = _pair(patch, "patch"), _pair(stride, "stride")
    h, w = batch.shape[-2:]
    if not (1 <= ph <= h and 1 <= pw <= w) or sh < 1 or sw < 1:
        raise ValueError(f"need 1 <= patch <= image size and stride >= 1; got patch "
                         f"{(ph, pw)}, stride {(sh, sw)} for a {h} × {w} image")
    corners = [(r, c) for r in _corners(h, ph, sh) for c in _corners(w, pw, sw)]
    with _EvalMode(model):
        x = batch.to(_device(model))
        scores = _scores(model, x)
        targets = _targets(target, scores)
        base = scores.softmax(dim=1).gather(1, targets[:, None])[:, 0]
        maps = []
        for n in range(len(x)):
            drops = torch.cat([
                base[n] - _scores(model, _occluded(x[n], chunk, (ph, pw), fill))
                .softmax(dim=1)[:, targets[n]]
                for chunk in _chunks(corners, batch_size)])
            maps.append(_spread(drops, corners, (ph, pw), (h, w)))
    maps = torch.stack(maps).cpu()
    return maps[0] if single else maps


def _chunks(items: list, size: int) -> list[list]:
    if size < 1:
        raise ValueError(f"batch_size must be at least 1, got {size}")
    return [items[k:k + size] for k in range(0, len(items), size)]


def _occluded(image: torch.Tensor, corners: list[tuple[int, int]], patch: tuple[int, int],
              fill: float) -> torch.Tensor:
    """One copy of ``image`` per corner, with that patch set to ``fill``."""
    copies = image.repeat(len(corners), 1, 1, 1)
    for k, (r, c) in enumerate(corners):
        copies[k, :, r:r + patch[0], c:c + patch[1]] = fill
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
