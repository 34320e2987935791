"""Synthetic training samples, as in the thesis: small rotations, shifts, zoom, flips, contrast, noise;
optionally random erasing (Zhong et al. 2020: one rectangle of random grey per chosen image)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

ROTATION_RAD = 0.04 * 2 * torch.pi  # about +-14 degrees
SHIFT = 0.08  # fraction of the side, each axis
ZOOM = 0.1  # +-10 %
CONTRAST = 0.2  # factor 0.8..1.2 around each image's mean
NOISE_STDDEV = 4.0  # grey levels of additive Gaussian noise
ERASE_AREA = (0.02, 0.2)  # erased rectangle, as a share of the image area
ERASE_ASPECT = (0.3, 3.3)  # its height / width


def _uniform(shape: tuple[int, ...], spread: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * spread


def augment_batch(pixels: torch.Tensor, generator: torch.Generator, erase_prob: float = 0.0) -> torch.Tensor:
    """Random copies of float32 N x 1 x H x W pixels 0..255 (same shape and range; borders replicated);
    a share erase_prob of them also get one erased rectangle (no extra random draws when it is 0).

    generator: a CPU generator, so a seeded run draws the same samples on any device.
    """
    n = pixels.shape[0]
    angle = _uniform((n,), ROTATION_RAD, generator)
    zoom = 1.0 + _uniform((n,), ZOOM, generator)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    shift = _uniform((n, 2), 2.0 * SHIFT, generator)  # affine_grid's coordinates span -1..1
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], dim=1),
                         torch.stack([sin * flip, cos, shift[:, 1]], dim=1)], dim=1)
    grid = F.affine_grid(theta.to(pixels.device), list(pixels.shape), align_corners=False)
    out = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)
    factor = (1.0 + _uniform((n, 1, 1, 1), CONTRAST, generator)).to(pixels.device)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * factor + mean
    noise = torch.randn(pixels.shape, generator=generator).to(pixels.device) * NOISE_STDDEV
    out = (out + noise).clamp_(0.0, 255.0)
    return _erase(out, generator, erase_prob) if erase_prob > 0 else out


def _erase(pixels: torch.Tensor, generator: torch.Generator, prob: float) -> torch.Tensor:
    """Fill one random rectangle (ERASE_AREA, ERASE_ASPECT) with uniform random grey in a share prob of
    the N x 1 x H x W images."""
    n, _, h, w = pixels.shape
    chosen = torch.rand(n, generator=generator) < prob
    area = (ERASE_AREA[0] + torch.rand(n, generator=generator) * (ERASE_AREA[1] - ERASE_AREA[0])) * h * w
    low, high = math.log(ERASE_ASPECT[0]), math.log(ERASE_ASPECT[1])
    aspect = torch.exp(low + torch.rand(n, generator=generator) * (high - low))
    eh = torch.sqrt(area * aspect).round().clamp(1, h)
    ew = torch.sqrt(area / aspect).round().clamp(1, w)
    top = (torch.rand(n, generator=generator) * (h - eh + 1)).floor()
    left = (torch.rand(n, generator=generator) * (w - ew + 1)).floor()
    rows, cols = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    inside = ((rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1))
              & (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1)) & chosen.view(n, 1, 1))
    fill = torch.rand(pixels.shape, generator=generator) * 255.0
    mask = inside.unsqueeze(1).to(pixels.device)
    return torch.where(mask, fill.to(pixels.device), pixels)
