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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from ganaug._util.images import from_float, image_batch, match_channels, to_float
from ganaug._util.rng import torch_generator
from ganaug._util.validate import as_labels

if TYPE_CHECKING:
    from ganaug.sampling.gan import GANAug

__all__ = ["CompletionSettings", "complete", "complete_images", "completion_noise", "diffusion_fill", "feather_mask",
           "mask_batch"]

PRIOR_WEIGHT = 0.01  # weight of the Gaussian prior on z, which keeps the latent on the generator's manifold
VOTE_NEIGHBOURS = 10  # bank neighbours whose classes vote for the candidate labels
VOTE_TIE_BREAK = 0.1  # a small preference for lower class indices among equal votes


@dataclass(frozen=True)
class CompletionSettings:
    """The knobs of :meth:`GANAug.complete` (see there); ``candidates`` is its ``label_candidates``."""

    steps: int = 30
    feather: int = 2
    optimize_condition: bool = True
    lr: float = 0.05
    feature_weight: float = 1.0
    candidates: int = 3
    batch_size: int = 64


def complete(gan: GANAug, images: Any, masks: Any, labels: int | Sequence[int] | torch.Tensor | None,
             seed: int | None, settings: CompletionSettings) -> Any:
    """The work behind :meth:`GANAug.complete`: fill the masked part of images of any accepted form."""
    batch = image_batch(images, min_size=True)
    pixels = to_float(batch.images.cpu())
    missing = mask_batch(masks, pixels.shape)
    given = None if labels is None else torch.tensor(as_labels(labels, gan.num_classes, len(pixels)))
    out = pixels.clone()
    empty = ~missing.flatten(1).any(dim=1)
    full = missing.flatten(1).all(dim=1)
    if full.any():
        if given is None:
            raise ValueError(f"images {torch.nonzero(full).flatten().tolist()} are fully masked: give labels to "
                             "sample them, since there is nothing visible to infer the class from")
        samples = gan.sample(int(full.sum()), given[full], seed=seed).float().cpu() / 255
        samples = F.interpolate(samples, size=pixels.shape[-2:], mode="bilinear", align_corners=False)
        out[full] = match_channels(samples, pixels.shape[1]).clamp(0, 1)
    partial = ~(empty | full)
    if partial.any():
        # one latent per image by its position, so an image's result does not depend on the other masks
        noise = completion_noise(len(pixels), gan.generator.z_dim, seed, settings.batch_size)
        out[partial] = complete_images(gan, pixels[partial], missing[partial].float()[:, None],
                                       None if given is None else given[partial], settings, noise[partial])
    return batch.restore(from_float(out, batch.images.dtype))


def mask_batch(masks: Any, image_shape: torch.Size) -> torch.Tensor:
    """Masks as bool (N, H, W), checked against the images' (N, C, H, W)."""
    if isinstance(masks, np.ndarray):
        masks = torch.from_numpy(np.array(masks))  # a copy: the caller's array may be read-only
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"masks should be a torch.Tensor or a numpy array, got {type(masks).__name__}")
    if masks.dtype not in (torch.bool, torch.uint8):
        raise TypeError(f"masks should be bool or uint8 (nonzero = missing), got dtype {masks.dtype}")
    num, _, height, width = image_shape
    if masks.ndim == 2:
        masks = masks.expand(num, -1, -1)
    if tuple(masks.shape) != (num, height, width):
        raise ValueError(f"masks should be (H, W) or (N, H, W) = {(num, height, width)} to match the images, got "
                         f"{tuple(masks.shape)}")
    return masks.cpu() != 0


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
                    settings: CompletionSettings, noise: torch.Tensor) -> torch.Tensor:
    """Complete partly masked images, in batches of ``settings.batch_size``.

    Args:
        gan: the model (instance-conditional).
        images: float (N, C, H, W) in [0, 1].
        masks: float (N, 1, H, W), 1 = missing; every image has some missing and some visible pixels.
        labels: int64 (N,) or None (inferred from the visible part's features).
        settings: see :meth:`GANAug.complete`.
        noise: float (N, z_dim), each image's starting latent (:func:`completion_noise`).

    Returns:
        float (N, C, H, W) in [0, 1].
    """
    out = []
    with torch.enable_grad():
        for start in range(0, len(images), settings.batch_size):
            part = slice(start, start + settings.batch_size)
            out.append(_complete_batch(gan, images[part], masks[part], None if labels is None else labels[part],
                                       noise[part], settings))
    return torch.cat(out)


def completion_noise(num: int, z_dim: int, seed: int | None, batch_size: int) -> torch.Tensor:
    """The starting latents of ``num`` images, one row per image, drawn from ``seed`` in batches."""
    rng = torch_generator(seed)
    return torch.cat([torch.randn(min(batch_size, num - start), z_dim, generator=rng)
                      for start in range(0, num, batch_size)] or [torch.empty(0, z_dim)])


def _complete_batch(gan: GANAug, images: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor | None,
                    noise: torch.Tensor, settings: CompletionSettings) -> torch.Tensor:
    """One batch of :func:`complete_images`: condition, latent optimization, pick the best class, blend."""
    feature_weight = settings.feature_weight
    device = gan.device
    size = (gan.resolution, gan.resolution)
    target = match_channels(F.interpolate(images, size=size, mode="bilinear", align_corners=False,
                                              antialias=True), gan.channels).to(device)
    hole = F.interpolate(masks, size=size, mode="area").to(device)  # fraction missing per model pixel
    visible = (1 - hole).clamp(0, 1)
    with torch.no_grad():
        condition = gan.extractor.embed(diffusion_fill(target, visible)).float()
        if labels is None:  # the most voted classes, each fitted below; the best fit wins
            votes = gan.class_votes(condition.cpu(), k=VOTE_NEIGHBOURS).float()
            votes = votes + torch.linspace(0, VOTE_TIE_BREAK, gan.num_classes).flip(0)
            labels = votes.topk(min(settings.candidates, gan.num_classes), dim=1).indices  # (N, candidates)
        else:
            labels = labels[:, None]
    count = labels.shape[1]
    target, visible, condition = (t.repeat_interleave(count, dim=0) for t in (target, visible, condition))
    noise = noise.repeat_interleave(count, dim=0)
    labels = labels.flatten().to(device)
    z = noise.to(device).requires_grad_(True)
    condition = condition.clone().requires_grad_(settings.optimize_condition)
    parameters = [z, condition] if settings.optimize_condition else [z]
    optimizer = torch.optim.Adam(parameters, lr=settings.lr)
    reference = F.normalize(condition.detach(), dim=1)
    weight_sum = visible.sum(dim=(1, 2, 3)).clamp_min(1e-6)
    for _ in range(settings.steps):
        generated = (gan.generator(z, labels, condition) + 1) / 2
        pixel_loss = ((generated - target).abs() * visible).sum(dim=(1, 2, 3)) / weight_sum
        features = F.normalize(gan.extractor.embed(generated).float(), dim=1)
        feature_loss = 1 - (features * reference).sum(dim=1)
        prior = z.square().mean(dim=1)
        loss = (pixel_loss + feature_weight * feature_loss + PRIOR_WEIGHT * prior).sum()
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
    weights = feather_mask(masks, settings.feather)
    return images * (1 - weights) + generated * weights


def diffusion_fill(images: torch.Tensor, visible: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """Images whose not fully visible pixels are inpainted by OpenCV's Navier-Stokes method.

    This is what the feature network sees of a partly masked image: a hole filled with a smooth
    continuation of its surroundings shifts the features far less than a flat fill, so the
    class vote and the condition come out closer to the whole image's (docs/completion.md).

    Args:
        images: float (N, C, H, W) in [0, 1], C = 1 or 3.
        visible: float (N, 1, H, W) in [0, 1]; pixels below 1 are filled.
        radius: OpenCV's inpainting neighbourhood, in pixels.

    Returns:
        float (N, C, H, W): ``images * visible + filled * (1 - visible)``.
    """
    import cv2  # opencv-python-headless, a dependency of ganaug's own; imported here, where it is used

    pixels = (images.detach().float().cpu() * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    holes = (visible.detach().cpu()[:, 0] < 1).numpy().astype(np.uint8) * 255
    filled = np.stack([cv2.inpaint(np.ascontiguousarray(image), hole, radius, cv2.INPAINT_NS).reshape(image.shape)
                       for image, hole in zip(pixels, holes, strict=True)])
    filled = torch.from_numpy(filled).permute(0, 3, 1, 2).to(images.device, images.dtype) / 255
    return images * visible + filled * (1 - visible)
