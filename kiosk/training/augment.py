"""Synthetic training samples, as in the thesis: small rotations, shifts, zoom, flips, contrast, noise."""

from __future__ import annotations

import torch
import torch.nn.functional as F

ROTATION_RAD = 0.04 * 2 * torch.pi  # about +-14 degrees
SHIFT = 0.08  # fraction of the side, each axis
ZOOM = 0.1  # +-10 %
CONTRAST = 0.2  # factor 0.8..1.2 around each image's mean
NOISE_STDDEV = 4.0  # grey levels of additive Gaussian noise


def _uniform(shape: tuple[int, ...], spread: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * spread


def augment_batch(pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random copies of float32 N x 1 x H x W pixels 0..255 (same shape and range; borders replicated).

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
    return (out + noise).clamp_(0.0, 255.0)
