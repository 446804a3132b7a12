"""Random affine augmentation applied to whole batches of image tensors."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def random_affine(
    images: torch.Tensor,
    max_rotation: float,
    max_shift: float,
    max_scale: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Rotate, shift and scale each image in a batch by its own random amount.

    images: [N, C, H, W] pixels in [0, 1] with a black (0) background.
    max_rotation: degrees; each image turns by a uniform angle in [-max_rotation, max_rotation].
    max_shift: pixels; each image moves by a uniform offset in [-max_shift, max_shift] on each axis.
    max_scale: fraction; each image is scaled by a uniform factor in [1 - max_scale, 1 + max_scale].
    Returns a new tensor of the same shape, with values still in [0, 1].
    """
    n, _, height, width = images.shape
    if n == 0 or (max_rotation == 0 and max_shift == 0 and max_scale == 0):
        return images

    def uniform(limit: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator) * 2 - 1) * limit

    angle = uniform(math.radians(max_rotation))
    scale = 1 + uniform(max_scale)
    # grid_sample works in normalised coordinates, where the image spans [-1, 1], so one
    # pixel is 2 / size. The grid maps output positions to input positions, hence
    # dividing by the scale makes the digit larger when scale > 1.
    shift_x = uniform(max_shift) * 2 / width
    shift_y = uniform(max_shift) * 2 / height
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale

    # Output pixel (x, y) samples the input at (cos x - sin y + shift_x, sin x + cos y + shift_y),
    # the grid that F.affine_grid(theta, align_corners=False) builds. Broadcasting is used because
    # affine_grid's batched matrix product took about three times as long on a 2-core CPU.
    cos, sin, shift_x, shift_y = (
        value.to(images.device, images.dtype)[:, None, None] for value in (cos, sin, shift_x, shift_y)
    )
    # Pixel centres in normalised coordinates, as affine_grid places them with align_corners=False.
    xs = (torch.arange(width, device=images.device, dtype=images.dtype) * 2 + 1) / width - 1
    ys = ((torch.arange(height, device=images.device, dtype=images.dtype) * 2 + 1) / height - 1)[:, None]
    grid = torch.stack([cos * xs - sin * ys + shift_x, sin * xs + cos * ys + shift_y], dim=-1)

    # Bilinear interpolation of values in [0, 1] with zero padding stays in [0, 1].
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
