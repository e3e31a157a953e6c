"""One training step's parts: the discriminator step, the generator step, their losses, and the EMA update.

The hinge or the non-saturating loss (``TrainConfig.loss``), summed over the discriminator's
heads. DiffAugment (``TrainConfig.diffaugment``, off by default) is applied to real and fake
images before D. In the D step the frozen backbone runs under ``no_grad`` on real and fake images in one
batch; only the G step backpropagates through it, to the images.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import nn

from ganaug.nets.diffaugment import diff_augment

__all__ = ["LOSSES", "backward_and_step", "d_loss", "d_step", "g_loss", "g_step", "mode_seeking_loss", "update_ema"]

# The adversarial losses: the non-saturating logistic loss of the original GAN (as StyleGAN and the
# textbook DCGAN), or the hinge loss (SNGAN, BigGAN, Projected GAN).
LOSSES = ("non_saturating", "hinge")


def d_loss(logits_real: list[torch.Tensor], logits_fake: list[torch.Tensor], kind: str = "hinge") -> torch.Tensor:
    """The discriminator's loss of ``kind`` (one of :data:`LOSSES`), averaged over the batch and summed over heads."""
    pairs = [(r.float(), f.float()) for r, f in zip(logits_real, logits_fake, strict=True)]
    if kind == "hinge":
        return sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in pairs)
    if kind == "non_saturating":
        return sum(F.softplus(-r).mean() + F.softplus(f).mean() for r, f in pairs)
    raise ValueError(f"loss should be one of {LOSSES}, got {kind!r}")


def g_loss(logits: list[torch.Tensor], kind: str = "hinge") -> torch.Tensor:
    """The generator's loss of ``kind``: minus the mean logit (hinge) or softplus(-logit) (non-saturating), summed."""
    if kind == "hinge":
        return -sum(logit.float().mean() for logit in logits)
    if kind == "non_saturating":
        return sum(F.softplus(-logit.float()).mean() for logit in logits)
    raise ValueError(f"loss should be one of {LOSSES}, got {kind!r}")


def backward_and_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> bool:
    """Backward and step unless the loss or a gradient is non-finite; returns whether it stepped.

    With fp16 (``scaler`` enabled) the scaler itself skips steps with infinite gradients and
    lowers its scale, so only a non-finite loss is refused here.
    """
    optimizer.zero_grad(set_to_none=True)
    if not torch.isfinite(loss):
        return False
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, float("inf"))
    if not torch.isfinite(norm) and not scaler.is_enabled():
        optimizer.zero_grad(set_to_none=True)
        return False
    scaler.step(optimizer)
    scaler.update()
    return True


def d_step(discriminator: nn.Module, d_module: nn.Module, real: torch.Tensor, fake: torch.Tensor,
           labels: torch.Tensor, instance: torch.Tensor | None, policy: str, optimizer: torch.optim.Optimizer,
           scaler: torch.amp.GradScaler, autocast: AbstractContextManager, loss: str = "hinge",
           ) -> tuple[torch.Tensor, bool]:
    """One discriminator update on a batch of real and (detached) fake images.

    Args:
        discriminator: D as trained (possibly wrapped by DDP).
        d_module: the plain D module (its frozen ``features`` run without a graph).
        real: float (N, C, R, R) in [-1, 1].
        fake: float (N, C, R, R) in [-1, 1], the generator's output (detached here).
        labels: int64 (N,).
        instance: float (N, D) instance features, or None.
        policy: DiffAugment policy.
        optimizer, scaler: D's optimizer and the gradient scaler.
        autocast: the mixed-precision context of the run.
        loss: the adversarial loss, one of :data:`LOSSES`.

    Returns:
        The loss and whether the step was taken.
    """
    with autocast:
        real_aug = diff_augment(real, policy)
        fake_aug = diff_augment(fake.detach(), policy)
        both = torch.cat([real_aug, fake_aug])
        with torch.no_grad():  # the backbone is frozen: the D step needs no graph through it
            both_features = d_module.features(both)
        both_instance = None if instance is None else torch.cat([instance, instance])
        logits = discriminator(both, torch.cat([labels, labels]), both_instance, features=both_features)
        value = d_loss([t[:len(labels)] for t in logits], [t[len(labels):] for t in logits], loss)
    return value, backward_and_step(value, optimizer, scaler)


def g_step(d_module: nn.Module, fake: torch.Tensor, labels: torch.Tensor, instance: torch.Tensor | None,
           policy: str, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
           autocast: AbstractContextManager, z: torch.Tensor | None = None,
           mode_seeking: float = 0.0, loss: str = "hinge") -> tuple[torch.Tensor, bool]:
    """One generator update through the plain D module.

    D's weights get no update here, so under DDP no reduction is needed for them; the gradients
    they receive are dropped by the caller. With ``mode_seeking`` > 0 the two halves of the batch
    share their conditions, and the loss adds ``mode_seeking`` times :func:`mode_seeking_loss`.

    Returns:
        The loss and whether the step was taken.
    """
    with autocast:
        value = g_loss(d_module(diff_augment(fake, policy), labels, instance), loss)
        if mode_seeking > 0:
            value = value + mode_seeking * mode_seeking_loss(fake, z)
    return value, backward_and_step(value, optimizer, scaler)


def mode_seeking_loss(fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """MSGAN's term (Mao et al., 2019): small when images made from one condition differ as much as their noise.

    ``1 / (mean |G(c, z1) - G(c, z2)| / mean |z1 - z2| + eps)`` over the pairs (first half, second
    half) of the batch, which share their conditions: a generator that ignores z pays for it.
    """
    half = len(fake) // 2
    image_gap = (fake[:half].float() - fake[half:2 * half].float()).abs().mean()
    noise_gap = (z[:half] - z[half:2 * half]).abs().mean()
    return 1 / (image_gap / noise_gap + 1e-5)


@torch.no_grad()
def update_ema(ema: nn.Module, live: nn.Module, step: int, decay: float, warmup: int) -> None:
    """Move the EMA generator towards the trained one, with decay ``min(decay, (1 + step) / (warmup + step))``.

    Buffers (a BatchNorm generator's running statistics) are copied: they are the live network's.
    """
    decay = min(decay, (1 + step) / (warmup + step))
    for average, current in zip(ema.parameters(), live.parameters(), strict=True):
        average.lerp_(current.detach(), 1 - decay)
    for average, current in zip(ema.buffers(), live.buffers(), strict=True):
        average.copy_(current)
