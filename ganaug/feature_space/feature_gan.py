"""``FeatureGAN``: a class-conditional WGAN-GP over feature vectors, for heads trained on frozen backbones.

Generating images is the long way round for users who never fine-tune the backbone: they train
a linear or MLP head on frozen timm features. FeatureGAN generates those feature vectors
directly, as f-CLSWGAN (Xian et al., 2018) did for zero- and few-shot learning:

- generator G(z, y) and critic D(x, y): MLPs (LeakyReLU), the class as a learned embedding
  concatenated to the input;
- critic loss: WGAN-GP, ``D(fake) - D(real) + 10 * (|grad D(interpolate)| - 1)^2``, with
  ``critic_steps`` critic updates per generator update;
- generator loss: ``-D(fake) + cls_weight * CE(classifier(fake), y) + moment_weight * M``, where
  the classifier is a softmax regression trained on the real features first and then frozen, so
  that generated features stay classifiable as their class, and M matches each class's mean
  (an unbiased estimate of the squared distance) and per-dimension spread to the real ones, on
  ``moment_samples`` generated vectors per class. M is off by default: it brings samples closer
  to classes with hundreds of vectors but pulls a class with ten onto them (measured in
  docs/feature-generation.md);
- features are standardized per dimension with the real statistics, and mapped back on
  sampling; when every real feature is >= 0 (pooled ReLU features) samples are clamped at 0;
- real batches are drawn class-balanced by default (each class equally often), so rare classes
  get as many critic updates as common ones.

The cost of a fit with the defaults is in docs/feature-generation.md.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ganaug._util.checkpoint_file import read_checkpoint, strip_prefix, write_model_folder
from ganaug._util.rng import seeded, torch_generator
from ganaug._util.validate import (
    as_labels,
    check_betas,
    check_features,
    check_int,
    check_number,
    check_positive_int,
    label_tensor,
    resolve_device,
)

__all__ = ["FEATURE_GAN_WEIGHTS_FILE", "FeatureGAN", "FeatureGANConfig", "check_labelled_features"]

FEATURE_GAN_FORMAT = "ganaug.feature_gan/1"
FEATURE_GAN_WEIGHTS_FILE = "feature_gan.safetensors"
CRITIC_DISTANCE_LR_FACTOR = 5  # critic_distance's fresh critic learns faster than fit's: it has fewer steps


@dataclass
class FeatureGANConfig:
    """Settings of :meth:`FeatureGAN.fit`. ``ganaug features train`` reads its options from these fields."""

    steps: int = 2000  # generator updates
    batch_size: int = 128  # feature vectors per batch
    critic_steps: int = 5  # critic updates per generator update
    noise_dim: int = 64  # width of the generator's noise
    embed_dim: int = 32  # width of the class embedding
    hidden_dim: int = 512  # width of the hidden layers of both MLPs
    lr: float = 1e-4  # Adam learning rate of both networks
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas (f-CLSWGAN's settings)
    gp_weight: float = 10.0  # weight of the WGAN-GP gradient penalty
    cls_weight: float = 0.1  # weight of the frozen classifier's cross-entropy in the generator loss
    moment_weight: float = 0.0  # weight of the per-class mean and spread matching term (0: off)
    moment_samples: int = 64  # generated vectors per class for that term
    classifier_steps: int = 200  # L-BFGS iterations of the softmax classifier on the real features
    class_balanced: bool = True  # draw real batches with every class equally often
    seed: int = 0  # seeds the initial weights, the batches and the noise
    device: str | None = None  # cpu or cuda (default: cuda when available)
    log_every: int = 100  # steps between entries of the training history

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "critic_steps", "noise_dim", "embed_dim", "hidden_dim",
                     "classifier_steps", "log_every"):
            check_positive_int(name, getattr(self, name))
        check_int("moment_samples", self.moment_samples, low=2)
        for name in ("lr", "gp_weight"):
            check_number(name, getattr(self, name), 0.0, low_open=True)
        for name in ("cls_weight", "moment_weight"):
            check_number(name, getattr(self, name), 0.0)
        self.betas = check_betas(self.betas)
        check_int("seed", self.seed)
        if not isinstance(self.class_balanced, bool):
            raise ValueError(f"class_balanced should be True or False, got {self.class_balanced!r}")
        if self.device is not None:
            resolve_device(self.device)


def check_labelled_features(features: object, labels: object, num_classes: int | None = None,
                            names: tuple[str, str] = ("features", "labels")) -> tuple[torch.Tensor, torch.Tensor]:
    """Labelled feature vectors, checked: float (N, D) finite, and int (N,) labels in [0, num_classes).

    Returns:
        float32 (N, D) and int64 (N,), on the CPU.
    """
    feature_name, label_name = names
    if isinstance(features, torch.Tensor) and not features.is_floating_point():
        raise TypeError(f"{feature_name} should be float, got {features.dtype}")
    check_features(feature_name, features, min_rows=1)
    values = as_labels(labels, num_classes, name=label_name)
    if len(values) != len(features):
        raise ValueError(f"{label_name} should hold one label per feature vector ({len(features)}), got {len(values)}")
    if min(values) < 0:
        raise ValueError(f"{label_name} should be >= 0, got values in [{min(values)}, {max(values)}]")
    return features.detach().float().cpu(), torch.tensor(values, dtype=torch.int64)


class _ConditionalMLP(nn.Module):
    """``[input, embedding(y)] -> hidden -> hidden -> out``, LeakyReLU(0.2)."""

    def __init__(self, in_dim: int, num_classes: int, embed_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.embedding = nn.Embedding(num_classes, embed_dim)
        self.net = nn.Sequential(nn.Linear(in_dim + embed_dim, hidden_dim), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden_dim, hidden_dim), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden_dim, out_dim))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, self.embedding(labels)], dim=1))


class FeatureGAN:
    """A class-conditional generator of D-dimensional feature vectors (see the module docs).

    Build one untrained with ``FeatureGAN(feature_dim, num_classes)`` and call :meth:`fit`, or
    load one with :meth:`from_pretrained`.

    Example:
        >>> fgan = FeatureGAN(512, 10).fit(train_features, train_labels)
        >>> rare = fgan.sample(500, labels=9, seed=0)          # float (500, 512)
        >>> fgan.save_pretrained("fgan/")
    """

    def __init__(self, feature_dim: int, num_classes: int, config: FeatureGANConfig | None = None,
                 classes: Sequence[str] | None = None):
        feature_dim = check_positive_int("feature_dim", feature_dim)
        num_classes = check_int("num_classes", num_classes, low=2)
        self.config = config or FeatureGANConfig()
        self.feature_dim, self.num_classes = feature_dim, num_classes
        self.classes = tuple(classes) if classes is not None else tuple(str(c) for c in range(num_classes))
        if len(self.classes) != num_classes:
            raise ValueError(f"classes should name {num_classes} classes, got {len(self.classes)}")
        self.device = resolve_device(self.config.device)
        self.generator = self._new_generator()
        self.register_stats(torch.zeros(feature_dim), torch.ones(feature_dim), nonnegative=False)
        self.history: list[dict] = []
        self.fitted = False
        self.class_counts: list[int] | None = None  # real vectors per class in the last fit

    def register_stats(self, mean: torch.Tensor, std: torch.Tensor, nonnegative: bool) -> None:
        """The real features' per-dimension mean and std (the generator works in standardized units)."""
        self.mean, self.std, self.nonnegative = mean.float().cpu(), std.float().cpu(), bool(nonnegative)

    @property
    def trained_classes(self) -> list[int]:
        """Classes the last fit saw vectors of (all classes for a model saved before this was recorded)."""
        if self.class_counts is None:
            return list(range(self.num_classes))
        return [c for c, n in enumerate(self.class_counts) if n > 0]

    # --- training ---------------------------------------------------------------------------------

    def fit(self, features: torch.Tensor, labels: torch.Tensor | Sequence[int], progress: bool = False,
            ) -> FeatureGAN:
        """Train on real labelled features (WGAN-GP + classification loss). Returns ``self``.

        Like scikit-learn's ``fit``, it starts from freshly initialised weights (drawn from the
        config's seed), so fitting again, on the same or other data, gives the same result as a
        new FeatureGAN would.

        Args:
            features: float (N, feature_dim), finite.
            labels: int (N,) in [0, num_classes).
            progress: show a progress bar.
        """
        from tqdm.auto import tqdm

        features, labels = self._check_inputs(features, labels)
        config, device = self.config, self.device
        self.generator = self._new_generator()
        rng = torch.Generator().manual_seed(config.seed)
        nonnegative = bool((features >= 0).all())
        self.class_counts = torch.bincount(labels, minlength=self.num_classes).tolist()
        self.register_stats(features.mean(dim=0), features.std(dim=0).clamp_min(1e-6) if len(features) > 1
                            else torch.ones(self.feature_dim), nonnegative)
        real = self._standardize(features).to(device)
        labels = labels.to(device)
        classifier = self._train_classifier(real, labels)
        moments = _class_moments(real, labels, self.num_classes) if config.moment_weight > 0 else None
        critic = self._new_critic(config.seed + 1)
        g_opt = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=config.betas)
        d_opt = torch.optim.Adam(critic.parameters(), lr=config.lr, betas=config.betas)
        draw = self._batch_sampler(labels.cpu(), rng)
        self.generator.train()
        start = time.monotonic()
        self.history = []
        bar = tqdm(total=config.steps, desc="FeatureGAN", unit="step", disable=not progress)
        for step in range(1, config.steps + 1):
            for _ in range(config.critic_steps):
                d_real, d_fake, penalty = self._critic_step(critic, d_opt, real, labels, draw, rng)
            classification = self._generator_step(critic, classifier, g_opt, labels, draw, moments, rng)
            if step % config.log_every == 0 or step == config.steps:
                entry = {"step": step, "wasserstein": (d_real - d_fake).item(), "gradient_penalty": penalty.item(),
                         "classification": classification.item(), "seconds": time.monotonic() - start}
                self.history.append(entry)
                bar.set_postfix(w=f"{entry['wasserstein']:.3f}", cls=f"{entry['classification']:.3f}")
            bar.update(1)
        bar.close()
        self.generator.eval()
        self.fitted = True
        return self

    def _critic_step(self, critic: nn.Module, optimizer: torch.optim.Optimizer, real: torch.Tensor,
                     labels: torch.Tensor, draw: Callable[[], torch.Tensor], rng: torch.Generator,
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One WGAN-GP critic update on a drawn batch: ``D(fake) - D(real) + gp_weight * penalty``.

        Returns:
            The batch's mean critic scores of real and fake vectors, and the gradient penalty.
        """
        index = draw().to(self.device)
        x_real, y = real[index], labels[index]
        with torch.no_grad():
            x_fake = self.generator(self._noise(len(index), rng), y)
        d_real, d_fake = critic(x_real, y).mean(), critic(x_fake, y).mean()
        penalty = _gradient_penalty(critic, x_real, x_fake, y, rng)
        loss = d_fake - d_real + self.config.gp_weight * penalty
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return d_real, d_fake, penalty

    def _generator_step(self, critic: nn.Module, classifier: nn.Module, optimizer: torch.optim.Optimizer,
                        labels: torch.Tensor, draw: Callable[[], torch.Tensor],
                        moments: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
                        rng: torch.Generator) -> torch.Tensor:
        """One generator update: ``-D(fake) + cls_weight * CE + moment_weight * M``; returns the CE term."""
        index = draw().to(self.device)
        y = labels[index]
        x_fake = self.generator(self._noise(len(index), rng), y)
        critic.requires_grad_(False)  # the generator step needs no gradients of the critic's weights
        adversarial = -critic(x_fake, y).mean()
        critic.requires_grad_(True)
        classification = F.cross_entropy(classifier(x_fake), y)
        loss = adversarial + self.config.cls_weight * classification
        if moments is not None:
            loss = loss + self.config.moment_weight * self._moment_loss(moments, rng)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return classification

    def _new_critic(self, seed: int) -> _ConditionalMLP:
        with seeded(seed):
            return _ConditionalMLP(self.feature_dim, self.num_classes, self.config.embed_dim, self.config.hidden_dim,
                                   1).to(self.device)

    def _new_generator(self) -> _ConditionalMLP:
        with seeded(self.config.seed):
            return _ConditionalMLP(self.config.noise_dim, self.num_classes, self.config.embed_dim,
                                   self.config.hidden_dim, self.feature_dim).to(self.device)

    def _check_inputs(self, features: object, labels: object) -> tuple[torch.Tensor, torch.Tensor]:
        features, labels = check_labelled_features(features, labels, self.num_classes)
        if features.shape[1] != self.feature_dim:
            raise ValueError(f"features should have {self.feature_dim} dimensions, got {features.shape[1]}")
        return features, labels

    def _train_classifier(self, real: torch.Tensor, labels: torch.Tensor) -> nn.Linear:
        """The frozen softmax classifier of the generator's classification loss."""
        with seeded(self.config.seed + 2):
            classifier = nn.Linear(self.feature_dim, self.num_classes).to(self.device)
        optimizer = torch.optim.LBFGS(classifier.parameters(), lr=1, max_iter=self.config.classifier_steps,
                                      history_size=20, line_search_fn="strong_wolfe")
        counts = torch.bincount(labels, minlength=self.num_classes).clamp_min(1).float()
        weight = (counts.sum() / counts / self.num_classes).to(self.device)  # balanced, as the batches are

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = F.cross_entropy(classifier(real), labels, weight=weight) + 1e-4 * classifier.weight.square().sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        return classifier.requires_grad_(False).eval()

    def _moment_loss(self, moments: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                     rng: torch.Generator) -> torch.Tensor:
        """Per class: squared distance of the generated mean from the real one, plus of the per-dimension spreads.

        The mean term is unbiased (:func:`_squared_mean_distance`), so that, unlike the squared
        distance of a batch mean, it does not reward the generator for shrinking its spread.
        Averaged over the classes present in the real data.
        """
        mean, std, present = moments
        n = self.config.moment_samples
        classes = torch.nonzero(present).flatten()
        y = classes.repeat_interleave(n)
        fake = self.generator(self._noise(len(y), rng), y).view(len(classes), n, -1)
        mean_term = _squared_mean_distance(fake, mean[classes])
        spread_term = (fake.std(dim=1) - std[classes]).square().sum(dim=1)
        return (mean_term + spread_term).mean()

    def _batch_sampler(self, labels: torch.Tensor, rng: torch.Generator):
        size = self.config.batch_size
        if not self.config.class_balanced:
            return lambda: torch.randint(0, len(labels), (size,), generator=rng)
        present = [torch.nonzero(labels == c).flatten() for c in range(self.num_classes)]
        present = [members for members in present if len(members)]

        def draw() -> torch.Tensor:
            classes = torch.randint(0, len(present), (size,), generator=rng)
            offsets = torch.rand(size, generator=rng)
            return torch.stack([present[c][int(o * len(present[c]))] for c, o in zip(classes.tolist(),
                                                                                   offsets.tolist(), strict=True)])
        return draw

    def _noise(self, num: int, rng: torch.Generator) -> torch.Tensor:
        return torch.randn(num, self.config.noise_dim, generator=rng).to(self.device)

    def _standardize(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.std

    # --- using ------------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, num: int, labels: int | Sequence[int] | torch.Tensor | None = None, seed: int | None = None,
               batch_size: int = 4096) -> torch.Tensor:
        """Synthetic feature vectors.

        Args:
            num: how many.
            labels: one class for all, one label per vector, or None for classes in turn.
            seed: makes the output reproducible; None draws a fresh seed.
            batch_size: vectors per generator pass.

        Returns:
            float (num, feature_dim) on the CPU, in the real features' units.
        """
        num = check_int("num", num, low=0)
        batch_size = check_positive_int("batch_size", batch_size)
        if labels is None:
            trained = torch.tensor(self.trained_classes)
            labels = trained[torch.arange(num) % len(trained)]
        labels = label_tensor(labels, self.num_classes, num)
        unseen = sorted(set(labels.tolist()) - set(self.trained_classes))
        if unseen:
            raise ValueError(f"labels {unseen} name classes with no vectors in the data this FeatureGAN was fitted "
                             f"on (class counts {self.class_counts}); it cannot generate them")
        noise = torch.randn(num, self.config.noise_dim, generator=torch_generator(seed))
        self.generator.eval()
        out = [self.generator(noise[i:i + batch_size].to(self.device), labels[i:i + batch_size].to(self.device)).cpu()
               for i in range(0, num, batch_size)]
        features = torch.cat(out) if out else torch.empty(0, self.feature_dim)
        features = features * self.std + self.mean
        return features.clamp_min(0) if self.nonnegative else features

    @torch.no_grad()
    def critic_distance(self, features: torch.Tensor, labels: torch.Tensor | Sequence[int], steps: int = 300,
                        seed: int = 0) -> float:
        """A fresh critic's Wasserstein-1 estimate between real features and this generator's samples.

        Trains a new WGAN-GP critic (same architecture) for ``steps`` updates against the current
        generator and returns ``E[D(real)] - E[D(fake)]`` on the whole real set: a model-free way
        to compare generators, since the critic of :meth:`fit` is not kept.
        """
        features, labels = self._check_inputs(features, labels)
        rng = torch.Generator().manual_seed(seed)
        real = self._standardize(features).to(self.device)
        draw = self._batch_sampler(labels, rng)
        labels = labels.to(self.device)
        critic = self._new_critic(seed)
        optimizer = torch.optim.Adam(critic.parameters(), lr=self.config.lr * CRITIC_DISTANCE_LR_FACTOR,
                                     betas=self.config.betas)
        with torch.enable_grad():
            for _ in range(steps):
                self._critic_step(critic, optimizer, real, labels, draw, rng)
        fake = self.generator(self._noise(len(real), rng), labels)
        return float(critic(real, labels).mean() - critic(fake, labels).mean())

    # --- saving -----------------------------------------------------------------------------------

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write ``path/feature_gan.safetensors`` (weights and statistics; config as JSON in its header).

        As with :meth:`GANAug.save_pretrained`, the same information is written, for people, to
        ``path/config.json``; loading reads the .safetensors file only.
        """
        tensors = {f"generator.{k}": v for k, v in self.generator.state_dict().items()}
        tensors.update({"stats.mean": self.mean, "stats.std": self.std})
        info = {"feature_dim": self.feature_dim, "num_classes": self.num_classes, "classes": list(self.classes),
                "nonnegative": self.nonnegative, "fitted": self.fitted, "class_counts": self.class_counts,
                "config": {**dataclasses.asdict(self.config), "device": None}, "history": self.history[-20:]}
        return write_model_folder(path, FEATURE_GAN_WEIGHTS_FILE, tensors, info, FEATURE_GAN_FORMAT)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | None = None) -> FeatureGAN:
        """Load what :meth:`save_pretrained` wrote (a folder, or the .safetensors file itself)."""
        path = Path(path)
        file = path / FEATURE_GAN_WEIGHTS_FILE if path.is_dir() else path
        tensors, info = read_checkpoint(file, FEATURE_GAN_FORMAT)
        known = {f.name for f in dataclasses.fields(FeatureGANConfig)}
        unknown = sorted(set(info["config"]) - known)
        if unknown:
            raise ValueError(f"{str(file)!r} has config fields this ganaug does not know ({unknown}); it was "
                             "written by a newer ganaug")
        config = FeatureGANConfig(**{**info["config"], "device": device})  # fields added since take defaults
        model = cls(info["feature_dim"], info["num_classes"], config, classes=info["classes"])
        model.generator.load_state_dict(strip_prefix(tensors, "generator"))
        model.register_stats(tensors["stats.mean"], tensors["stats.std"], info["nonnegative"])
        model.history, model.fitted = info.get("history", []), info.get("fitted", True)
        model.class_counts = info.get("class_counts")  # None in files written before it was recorded
        return model

    def __repr__(self) -> str:
        return (f"FeatureGAN(feature_dim={self.feature_dim}, num_classes={self.num_classes}, "
                f"fitted={self.fitted})")


def _squared_mean_distance(samples: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Unbiased estimate of ``|E[x] - target|^2`` per group: samples (G, n, D), target (G, D) -> (G,).

    The U-statistic ``(|sum_i d_i|^2 - sum_i |d_i|^2) / (n (n - 1))`` with ``d = x - target``;
    the squared distance of the sample mean would add ``trace(cov) / n``.
    """
    n = samples.shape[1]
    if n < 2:
        raise ValueError(f"samples should hold at least 2 vectors per group, got {n}")
    d = samples - target[:, None]
    return (d.sum(dim=1).square().sum(dim=1) - d.square().sum(dim=(1, 2))) / (n * (n - 1))


def _class_moments(real: torch.Tensor, labels: torch.Tensor, num_classes: int,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class mean (C, D), per-dimension std (C, D; 0 for one-vector classes) and presence (C,)."""
    counts = torch.bincount(labels, minlength=num_classes)
    mean = torch.zeros(num_classes, real.shape[1], device=real.device).index_add_(0, labels, real)
    mean = mean / counts.clamp_min(1)[:, None]
    squares = torch.zeros_like(mean).index_add_(0, labels, (real - mean[labels]).square())
    std = (squares / (counts - 1).clamp_min(1)[:, None]).sqrt()
    return mean, std, counts > 0


def _gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor,
                      rng: torch.Generator) -> torch.Tensor:
    """WGAN-GP: mean of (|grad_x D(x, y)| - 1)^2 at random points between real and fake."""
    alpha = torch.rand(len(real), 1, generator=rng).to(real.device)
    mixed = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_(True)
    (gradient,) = torch.autograd.grad(critic(mixed, labels).sum(), mixed, create_graph=True)
    return (gradient.norm(dim=1) - 1).square().mean()
