"""Feature-conditioned image completion: fill a masked region with generated content that fits the rest.

1. The hole is first filled by a fast diffusion inpainting (OpenCV's Navier-Stokes method), so
   that the feature network sees a plausible whole image rather than a hole; its embedding
   becomes the generator's instance condition, and picks the candidate classes.
2. A short GAN inversion: Adam on the noise z, and optionally on the condition vector, so that
   the generator's output matches the visible pixels (L1) and the pre-filled image's features
   (cosine), with a Gaussian prior on z that keeps it on the generator's manifold. Without
   labels, it is run for the few classes the visible part's neighbours vote for most, and the
   best fit wins.
3. The generated image fills the hole through a feathered mask: weight 1 inside the hole,
   falling to 0 within ``feather`` pixels outside it, so visible pixels further away are
   returned unchanged.

Everything runs at the generator's resolution and is resized back; images may have any size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ganaug.gan import _generator

if TYPE_CHECKING:
    from ganaug.gan import GANAug

__all__ = ["check_hole_ranges", "complete_images", "completion_noise", "diffusion_fill", "feather_mask",
           "match_channels", "random_box_masks"]


def check_hole_ranges(num_holes_range: object, hole_height_range: object, hole_width_range: object,
                      ) -> tuple[tuple[int, int], tuple[float, float], tuple[float, float]]:
    """Validate cutout arguments: ``1 <= holes_low <= holes_high``; side fractions ``0 < low <= high <= 1``."""
    try:
        holes = tuple(int(v) for v in num_holes_range)
        heights = tuple(float(v) for v in hole_height_range)
        widths = tuple(float(v) for v in hole_width_range)
    except (TypeError, ValueError):
        raise ValueError("num_holes_range, hole_height_range and hole_width_range should be pairs of numbers, got "
                         f"{num_holes_range!r}, {hole_height_range!r}, {hole_width_range!r}") from None
    if len(holes) != 2 or not 1 <= holes[0] <= holes[1]:
        raise ValueError(f"num_holes_range should be (low, high) with 1 <= low <= high, got {num_holes_range!r}")
    for name, pair in (("hole_height_range", heights), ("hole_width_range", widths)):
        if len(pair) != 2 or not 0.0 < pair[0] <= pair[1] <= 1.0:
            raise ValueError(f"{name} should be (low, high) fractions of the side with 0 < low <= high <= 1, "
                             f"got {pair!r}")
    return holes, heights, widths


def random_box_masks(num: int, height: int, width: int, num_holes_range: tuple[int, int],
                     hole_height_range: tuple[float, float], hole_width_range: tuple[float, float],
                     rng: np.random.Generator) -> torch.Tensor:
    """Random rectangular holes, as CoarseDropout draws them: bool (num, height, width), True = missing.

    Each image gets a number of holes uniform in ``num_holes_range``; each hole's height and width
    are uniform fractions of the image's in the given ranges (at least 1 pixel).
    """
    masks = torch.zeros(num, height, width, dtype=torch.bool)
    for i in range(num):
        for _ in range(int(rng.integers(num_holes_range[0], num_holes_range[1] + 1))):
            hole_h = max(1, round(height * rng.uniform(*hole_height_range)))
            hole_w = max(1, round(width * rng.uniform(*hole_width_range)))
            top = int(rng.integers(0, height - hole_h + 1))
            left = int(rng.integers(0, width - hole_w + 1))
            masks[i, top:top + hole_h, left:left + hole_w] = True
    return masks


def feather_mask(masks: torch.Tensor, feather: int) -> torch.Tensor:
    """Blend weights for a hole: 1 inside, falling linearly to 0 within ``feather`` pixels outside.

    Args:
        masks: float (N, 1, H, W), 1 = missing.
        feather: width of the band outside the hole, in pixels; 0 gives a hard edge.

    Returns:
        float (N, 1, H, W) in [0, 1]; 0 wherever the distance to the hole exceeds ``feather``.
    """
    weights = masks.clone()
    grown = masks
    for step in range(1, feather + 1):  # Chebyshev distance rings around the hole
        grown = F.max_pool2d(grown, 3, stride=1, padding=1)
        weights = torch.maximum(weights, grown * (1 - step / (feather + 1)))
    return weights


def complete_images(gan: GANAug, images: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor | None,
                    steps: int, seed: int | None, feather: int, optimize_condition: bool, lr: float,
                    feature_weight: float, batch_size: int, candidates: int = 1,
                    noise: torch.Tensor | None = None) -> torch.Tensor:
    """The work behind :meth:`GANAug.complete`, on checked tensors.

    Args:
        gan: the model (instance-conditional).
        images: float (N, C, H, W) in [0, 1].
        masks: float (N, 1, H, W), 1 = missing; every image has some missing and some visible pixels.
        labels: int64 (N,) or None (inferred from the visible part's features).
        steps, seed, feather, optimize_condition, lr, feature_weight, batch_size, candidates: see
            GANAug.complete (``candidates`` is its ``label_candidates``).
        noise: float (N, z_dim), each image's starting latent; default: drawn from ``seed``
            (:func:`completion_noise`).

    Returns:
        float (N, C, H, W) in [0, 1].
    """
    if noise is None:
        noise = completion_noise(len(images), gan.generator.z_dim, seed, batch_size)
    out = []
    with torch.enable_grad():
        for start in range(0, len(images), batch_size):
            part = slice(start, start + batch_size)
            out.append(_complete_batch(gan, images[part], masks[part], None if labels is None else labels[part],
                                       noise[part], steps, feather, optimize_condition, lr, feature_weight,
                                       candidates))
    return torch.cat(out)


def completion_noise(num: int, z_dim: int, seed: int | None, batch_size: int) -> torch.Tensor:
    """The starting latents of ``num`` images, one row per image, drawn from ``seed`` in batches."""
    generator = _generator(seed)
    return torch.cat([torch.randn(min(batch_size, num - start), z_dim, generator=generator)
                      for start in range(0, num, batch_size)] or [torch.empty(0, z_dim)])


def _complete_batch(gan: GANAug, images: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor | None,
                    noise: torch.Tensor, steps: int, feather: int, optimize_condition: bool, lr: float,
                    feature_weight: float, candidates: int) -> torch.Tensor:
    device = gan.device
    size = (gan.resolution, gan.resolution)
    target = match_channels(F.interpolate(images, size=size, mode="bilinear", align_corners=False,
                                              antialias=True), gan.channels).to(device)
    hole = F.interpolate(masks, size=size, mode="area").to(device)  # fraction missing per model pixel
    visible = (1 - hole).clamp(0, 1)
    with torch.no_grad():
        condition = gan.extractor.embed(diffusion_fill(target, visible)).float()
        if labels is None:  # the most voted classes, each fitted below; the best fit wins
            votes = gan.class_votes(condition.cpu(), k=10).float() + torch.linspace(0, 0.1, gan.num_classes).flip(0)
            labels = votes.topk(min(candidates, gan.num_classes), dim=1).indices  # (N, candidates)
        else:
            labels = labels[:, None]
    count = labels.shape[1]
    target, visible, condition = (t.repeat_interleave(count, dim=0) for t in (target, visible, condition))
    noise = noise.repeat_interleave(count, dim=0)
    labels = labels.flatten().to(device)
    z = noise.to(device).requires_grad_(True)
    condition = condition.clone().requires_grad_(optimize_condition)
    parameters = [z, condition] if optimize_condition else [z]
    optimizer = torch.optim.Adam(parameters, lr=lr)
    reference = F.normalize(condition.detach(), dim=1)
    weight_sum = visible.sum(dim=(1, 2, 3)).clamp_min(1e-6)
    for _ in range(steps):
        generated = (gan.generator(z, labels, condition) + 1) / 2
        pixel_loss = ((generated - target).abs() * visible).sum(dim=(1, 2, 3)) / weight_sum
        features = F.normalize(gan.extractor.embed(generated).float(), dim=1)
        feature_loss = 1 - (features * reference).sum(dim=1)
        prior = z.square().mean(dim=1)
        loss = (pixel_loss + feature_weight * feature_loss + 0.01 * prior).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        generated = ((gan.generator(z, labels, condition) + 1) / 2).clamp(0, 1)
        if count > 1:
            pixel_loss = ((generated - target).abs() * visible).sum(dim=(1, 2, 3)) / weight_sum
            features = F.normalize(gan.extractor.embed(generated).float(), dim=1)
            fit = (pixel_loss + feature_weight * (1 - (features * reference).sum(dim=1))).view(-1, count)
            best = fit.argmin(dim=1) + torch.arange(len(fit), device=fit.device) * count
            generated = generated[best]
    generated = F.interpolate(generated.float().cpu(), size=images.shape[-2:], mode="bilinear", align_corners=False)
    generated = match_channels(generated, images.shape[1]).clamp(0, 1)
    weights = feather_mask(masks, feather)
    return images * (1 - weights) + generated * weights


def diffusion_fill(images: torch.Tensor, visible: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """Images whose not fully visible pixels are inpainted by OpenCV's Navier-Stokes method.

    This is what the feature network sees of a partly masked image: a hole filled with a smooth
    continuation of its surroundings shifts the features far less than a flat fill (on our
    benchmark model it raised the nearest-neighbour class vote's accuracy from 0.69 to 0.80).

    Args:
        images: float (N, C, H, W) in [0, 1], C = 1 or 3.
        visible: float (N, 1, H, W) in [0, 1]; pixels below 1 are filled.
        radius: OpenCV's inpainting neighbourhood, in pixels.

    Returns:
        float (N, C, H, W): ``images * visible + filled * (1 - visible)``.
    """
    import cv2  # OpenCV comes with albumentations

    pixels = (images.detach().float().cpu() * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    holes = (visible.detach().cpu()[:, 0] < 1).numpy().astype(np.uint8) * 255
    filled = np.stack([cv2.inpaint(np.ascontiguousarray(image), hole, radius, cv2.INPAINT_NS).reshape(image.shape)
                       for image, hole in zip(pixels, holes, strict=True)])
    filled = torch.from_numpy(filled).permute(0, 3, 1, 2).to(images.device, images.dtype) / 255
    return images * visible + filled * (1 - visible)


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Float (N, C, H, W) to ``channels`` channels: gray repeated, or ITU-R BT.601 luma (as PIL's convert("L"))."""
    if images.shape[1] == channels:
        return images
    if channels == 3:
        return images.expand(-1, 3, -1, -1)
    luma = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device)
    return (images * luma[None, :, None, None]).sum(dim=1, keepdim=True)

