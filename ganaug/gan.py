"""``GANAug``: a trained generator, loaded from a run or an export, ready to sample."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ganaug._io import atomic_path
from ganaug.checkpoint import MODEL_FORMAT, CheckpointError, read_checkpoint, strip_prefix, write_checkpoint
from ganaug.features import FeatureExtractor, as_image_batch
from ganaug.models import Generator, draw_instance_features, to_uint8

__all__ = ["GANAug"]

MODEL_FILE = "model.safetensors"
CPU_PASS_SIZE = 32
# Convolution and matrix kernels may round differently for different batch sizes (seen on AVX-512
# CPUs: one intensity level in a few pixels of a thousand), so sample_seeded runs every pass at one
# fixed size, padding the last, to keep its promise that an image depends only on its (label, seed).
SEEDED_PASS_SIZE = {"cpu": 16, "cuda": 256}


class GANAug:
    """A trained class- (and instance-) conditional generator: the EMA weights, plus what sampling needs.

    Build one with :meth:`from_pretrained` (a run directory or an export) or get it from
    :func:`ganaug.train`. Sampling is deterministic for a seed, and an image does not depend on
    what else is in its batch.
    """

    def __init__(self, generator: Generator, extractor: FeatureExtractor | None, bank_features: torch.Tensor | None,
                 bank_labels: torch.Tensor | None, info: dict, device: str | torch.device | None = None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        # channels_last: oneDNN's (and cuDNN's) fast convolution layout; about 1.5x faster sampling on a CPU.
        self.generator = generator.eval().requires_grad_(False).to(self.device, memory_format=torch.channels_last)
        self.extractor = None if extractor is None else extractor.to(self.device)
        self.bank_features = bank_features
        self.bank_labels = bank_labels
        self.info = info

    # --- loading and saving ----------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> GANAug:
        """Load a run directory (its latest checkpoint) or a folder written by :meth:`save_pretrained`."""
        path = Path(path)
        if (path / MODEL_FILE).is_file():
            tensors, info = read_checkpoint(path / MODEL_FILE, file_format=MODEL_FORMAT)
        elif (path / "checkpoint.safetensors").is_file():
            tensors, checkpoint_info = read_checkpoint(path / "checkpoint.safetensors")
            run_info = json.loads((path / "config.json").read_text())
            info = _model_info(run_info, checkpoint_info["step"], tensors)
            tensors = {k: v for k, v in tensors.items() if k.split(".")[0] in ("g_ema", "extractor", "bank")}
        elif path.exists():
            raise CheckpointError(f"{str(path)!r} holds neither {MODEL_FILE} (an exported model) nor "
                                  "checkpoint.safetensors (a training run)")
        else:
            raise FileNotFoundError(f"model path {str(path)!r} does not exist")
        with torch.random.fork_rng(devices=[]):  # building the modules draws random initial weights: not from
            generator = Generator(**info["generator"])  # the caller's stream, which loading must leave as it was
            generator.load_state_dict(strip_prefix(tensors, "g_ema"))
            extractor = None
            extractor_state = strip_prefix(tensors, "extractor")
            if extractor_state:
                backbone = info["backbone"]
                extractor = FeatureExtractor.from_state_dict(backbone["name"], extractor_state,
                                                             out_indices=backbone["out_indices"],
                                                             input_size=backbone["input_size"],
                                                             weights_origin=backbone["origin"])
        return cls(generator, extractor, tensors.get("bank.features"), tensors.get("bank.labels"), info, device)

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Export the EMA generator, the feature network and the instance bank to ``path/model.safetensors``.

        The model's config (generator shape, backbone, classes, training step, data source,
        versions) travels in the file's metadata and, for people, in ``path/config.json``.
        """
        path = Path(path)
        tensors = {f"g_ema.{k}": v for k, v in self.generator.state_dict().items()}
        if self.extractor is not None:
            tensors.update({f"extractor.{k}": v for k, v in self.extractor.state_dict().items()})
        if self.bank_features is not None:
            tensors["bank.features"] = self.bank_features
            tensors["bank.labels"] = self.bank_labels
        write_checkpoint(path / MODEL_FILE, tensors, self.info, file_format=MODEL_FORMAT)
        with atomic_path(path / "config.json") as tmp:  # the same information, for people to read
            tmp.write_text(json.dumps(self.info, indent=2))
        return path

    def to(self, device: str | torch.device) -> GANAug:
        """Move the model to ``device`` (in place); returns self."""
        self.device = torch.device(device)
        self.generator.to(self.device)
        if self.extractor is not None:
            self.extractor.to(self.device)
        return self

    # --- what it makes ---------------------------------------------------------------------------

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.info["classes"])

    @property
    def num_classes(self) -> int:
        return self.generator.num_classes

    @property
    def resolution(self) -> int:
        return self.generator.resolution

    @property
    def channels(self) -> int:
        return self.generator.channels

    @property
    def instance_conditional(self) -> bool:
        return self.generator.instance_dim > 0

    @torch.no_grad()
    def sample(self, num: int, labels: int | Sequence[int] | torch.Tensor | None = None, seed: int | None = None,
               truncation: float = 1.0, batch_size: int = 256) -> torch.Tensor:
        """Class-conditional samples.

        Args:
            num: how many images.
            labels: one class for all, one label per image, or None for classes in turn (0, 1, ...).
            seed: makes the output reproducible; None draws a fresh seed.
            truncation: in (0, 1]; scales the noise, trading diversity for fidelity.
            batch_size: images per generator pass (on the CPU at most CPU_PASS_SIZE).

        Returns:
            uint8 (num, channels, resolution, resolution).
        """
        if not isinstance(num, int) or num < 0:
            raise ValueError(f"num should be a non-negative int, got {num!r}")
        if not 0.0 < truncation <= 1.0:
            raise ValueError(f"truncation should lie in (0, 1], got {truncation!r}")
        labels = self._labels(num, labels)
        generator = _generator(seed)
        z = torch.randn(num, self.generator.z_dim, generator=generator) * truncation
        instance = (draw_instance_features(self.bank_features, self.bank_labels, labels, generator)
                    if self.instance_conditional else None)
        return self._generate(z, labels, instance, batch_size)

    @torch.no_grad()
    def sample_seeded(self, labels: Sequence[int] | torch.Tensor, seeds: Sequence[int] | torch.Tensor,
                      truncation: float = 1.0) -> torch.Tensor:
        """One class sample per ``(label, seed)`` pair; each image depends only on its own pair.

        The same pair gives the same image in any batch and any order, which is what datasets
        with fixed items and sharded dataset writers need: the generator runs in passes of one
        fixed size (``SEEDED_PASS_SIZE``), the last one padded.

        Args:
            labels: int (N,) class labels.
            seeds: int (N,) non-negative seeds, one per image.
            truncation: in (0, 1]; scales the noise.

        Returns:
            uint8 (N, channels, resolution, resolution).
        """
        seeds = torch.as_tensor(seeds, dtype=torch.int64).flatten()
        labels = self._labels(len(seeds), labels)
        if not 0.0 < truncation <= 1.0:
            raise ValueError(f"truncation should lie in (0, 1], got {truncation!r}")
        if len(seeds) and int(seeds.min()) < 0:
            raise ValueError(f"seeds should be non-negative, got {int(seeds.min())}")
        z = torch.empty(len(seeds), self.generator.z_dim)
        instance = torch.empty(len(seeds), self.generator.instance_dim) if self.instance_conditional else None
        for i, seed in enumerate(seeds.tolist()):
            generator = torch.Generator().manual_seed(seed)
            z[i] = torch.randn(self.generator.z_dim, generator=generator) * truncation
            if instance is not None:
                instance[i:i + 1] = draw_instance_features(self.bank_features, self.bank_labels, labels[i:i + 1],
                                                           generator)
        return self._generate(z, labels, instance, SEEDED_PASS_SIZE.get(self.device.type, 256), pad=True)

    @torch.no_grad()
    def sample_like(self, images: torch.Tensor, num_per_image: int = 1, seed: int | None = None,
                    labels: int | Sequence[int] | torch.Tensor | None = None, batch_size: int = 256) -> torch.Tensor:
        """Variants of given images: generated with their backbone features as the instance condition.

        Args:
            images: uint8 in [0, 255] or float in [0, 1]; (N, C, H, W) or (C, H, W), C in {1, 3}.
            num_per_image: variants per input image.
            seed: makes the output reproducible.
            labels: the images' classes; default: inferred from their features (nearest neighbours
                in the instance bank).
            batch_size: images per generator pass (on the CPU at most CPU_PASS_SIZE).

        Returns:
            uint8 (N * num_per_image, channels, resolution, resolution), the variants of image 0
            first.
        """
        if not self.instance_conditional:
            raise ValueError("sample_like needs an instance-conditional model (TrainConfig.instance_conditioning)")
        if not isinstance(num_per_image, int) or num_per_image < 1:
            raise ValueError(f"num_per_image should be a positive int, got {num_per_image!r}")
        features = self.embed(images)
        labels = self.infer_labels(features) if labels is None else self._labels(len(features), labels)
        generator = _generator(seed)
        features = features.repeat_interleave(num_per_image, dim=0)
        labels = labels.repeat_interleave(num_per_image)
        z = torch.randn(len(labels), self.generator.z_dim, generator=generator)
        return self._generate(z, labels, features.cpu(), batch_size)

    def complete(self, images: torch.Tensor | np.ndarray, masks: torch.Tensor | np.ndarray,
                 labels: int | Sequence[int] | torch.Tensor | None = None, steps: int = 30, seed: int | None = None,
                 feather: int = 2, optimize_condition: bool = True, lr: float = 0.05, feature_weight: float = 1.0,
                 label_candidates: int = 3, batch_size: int = 64) -> torch.Tensor | np.ndarray:
        """Fill the masked region of images with generated content conditioned on the visible part.

        The features of the image with its hole pre-filled by diffusion inpainting (OpenCV
        Navier-Stokes) become the generator's instance condition; ``steps`` Adam
        steps on the noise (and the condition) then fit the visible pixels and their features;
        the result fills the hole through a mask feathered over ``feather`` pixels. See
        :mod:`ganaug.completion`.

        Args:
            images: torch uint8 in [0, 255] or float in [0, 1], (N, C, H, W) or (C, H, W); or
                numpy uint8/float32 (H, W), (H, W, C) or (N, H, W, C). C in {1, 3}.
            masks: bool or uint8 (nonzero = missing), (H, W) for all images or (N, H, W).
            labels: the images' classes; default: inferred from the visible part's features (see
                ``label_candidates``).
            steps: latent optimization steps (0: feature conditioning only).
            seed: makes the result reproducible.
            feather: width in pixels of the blend band outside the hole; pixels further from
                the hole are returned unchanged.
            optimize_condition: optimize the condition vector too, not only the noise.
            lr: Adam learning rate.
            feature_weight: weight of the feature-matching loss against the pixel L1 loss.
            label_candidates: without labels, the completion is fitted for this many classes
                (those most voted by the visible part's nearest neighbours in the instance bank)
                and the best fit is kept; costs that many times the work. 1: the top vote only.
            batch_size: images per optimization batch.

        Returns:
            The completed images, with the input's type, dtype and layout. An image whose mask
            is empty comes back unchanged; a fully masked image becomes a plain class sample
            (which needs its label).
        """
        from ganaug.completion import complete_images, completion_noise, match_channels

        if not self.instance_conditional or self.extractor is None:
            raise ValueError("complete needs an instance-conditional model with its feature network")
        for name, value, low in (("steps", steps, 0), ("feather", feather, 0), ("batch_size", batch_size, 1),
                                 ("label_candidates", label_candidates, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} should be an int >= {low}, got {value!r}")
        batch, restore = _image_batch(images)
        missing = _mask_batch(masks, batch.shape)
        given = None if labels is None else self._labels(len(batch), labels)
        out = batch.clone()
        empty = ~missing.flatten(1).any(dim=1)
        full = missing.flatten(1).all(dim=1)
        if full.any():
            if given is None:
                raise ValueError(f"images {torch.nonzero(full).flatten().tolist()} are fully masked: give labels "
                                 "to sample them, since there is nothing visible to infer the class from")
            samples = self.sample(int(full.sum()), given[full], seed=seed).float().cpu() / 255
            samples = F.interpolate(samples, size=batch.shape[-2:], mode="bilinear", align_corners=False)
            out[full] = match_channels(samples, batch.shape[1]).clamp(0, 1)
        partial = ~(empty | full)
        if partial.any():
            # one latent per image by its position, so an image's result does not depend on the other masks
            noise = completion_noise(len(batch), self.generator.z_dim, seed, batch_size)
            out[partial] = complete_images(self, batch[partial], missing[partial].float()[:, None],
                                           None if given is None else given[partial], steps, seed, feather,
                                           optimize_condition, lr, feature_weight, batch_size, label_candidates,
                                           noise=noise[partial])
        return restore(out)

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Instance features of images (the backbone's pooled features): float (N, instance_dim) on the CPU."""
        if self.extractor is None:
            raise ValueError("this model has no feature network")
        images = as_image_batch(images)
        return torch.cat([self.extractor.embed(images[i:i + batch_size].to(self.device)).float().cpu()
                          for i in range(0, len(images), batch_size)])

    def infer_labels(self, features: torch.Tensor, k: int = 5) -> torch.Tensor:
        """Class labels for instance features, by a k-nearest-neighbour vote in the instance bank."""
        return self.class_votes(features, k).argmax(dim=1)

    def class_votes(self, features: torch.Tensor, k: int = 5) -> torch.Tensor:
        """int64 (N, num_classes): how many of each feature vector's k nearest bank vectors have each class."""
        bank = F.normalize(self.bank_features.float(), dim=1)
        nearest = (F.normalize(features.float(), dim=1) @ bank.T).topk(min(k, len(bank)), dim=1).indices
        return F.one_hot(self.bank_labels[nearest], num_classes=self.num_classes).sum(dim=1)

    def _generate(self, z: torch.Tensor, labels: torch.Tensor, instance: torch.Tensor | None,
                  batch_size: int, pad: bool = False) -> torch.Tensor:
        """uint8 images from generator inputs, in passes of ``batch_size``; ``pad``: every pass exactly that size."""
        if pad:
            num = len(z)
            extra = -num % batch_size
            if extra:  # repeat the first row: padding rows are computed and dropped
                z, labels = torch.cat([z, z[:1].expand(extra, -1)]), torch.cat([labels, labels[:1].expand(extra)])
                if instance is not None:
                    instance = torch.cat([instance, instance[:1].expand(extra, -1)])
            return self._generate(z, labels, instance, batch_size)[:num]
        if self.device.type == "cpu" and batch_size > CPU_PASS_SIZE:
            # Passes of at most 32 images keep the activations in cache: at 28 px this ran about
            # 1.3x faster per image than passes of 256 on our 2-core machine.
            batch_size = min(batch_size, CPU_PASS_SIZE)
        out = []
        for i in range(0, len(z), batch_size):
            part = None if instance is None else instance[i:i + batch_size].to(self.device)
            images = self.generator(z[i:i + batch_size].to(self.device), labels[i:i + batch_size].to(self.device), part)
            out.append(to_uint8(images))
        if not out:
            return torch.empty(0, self.channels, self.resolution, self.resolution, dtype=torch.uint8)
        return torch.cat(out)

    def _labels(self, num: int, labels) -> torch.Tensor:
        if labels is None:
            return torch.arange(num) % self.num_classes
        if isinstance(labels, int):
            labels = torch.full((num,), labels)
        labels = torch.as_tensor(labels, dtype=torch.int64).flatten()
        if len(labels) != num:
            raise ValueError(f"labels should hold one label per image ({num}), got {len(labels)}")
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"labels should lie in [0, {self.num_classes}), got values in "
                             f"[{int(labels.min())}, {int(labels.max())}]")
        return labels

    def __repr__(self) -> str:
        return (f"GANAug(classes={self.num_classes}, resolution={self.resolution}, channels={self.channels}, "
                f"instance_conditional={self.instance_conditional}, step={self.info.get('step')})")


def _model_info(run_info: dict, step: int, tensors: dict[str, torch.Tensor]) -> dict:
    """What a model needs to rebuild itself, from a run's config.json and checkpoint."""
    config = run_info["config"]
    instance_dim = tensors["bank.features"].shape[1] if "bank.features" in tensors else 0
    return {
        "generator": {
            "num_classes": len(run_info["classes"]), "resolution": run_info["resolution"],
            "channels": run_info["channels"], "z_dim": config["z_dim"], "embed_dim": config["embed_dim"],
            "instance_dim": instance_dim, "base_channels": config["g_channels"],
            "min_channels": config["g_min_channels"],
        },
        "backbone": {
            "name": config["backbone"], "out_indices": config["backbone_out_indices"],
            "input_size": config["backbone_input_size"], "origin": run_info["backbone"]["origin"],
        },
        "classes": run_info["classes"],
        "step": step,
        "data": run_info["data"],
        "versions": run_info["versions"],
    }


def _image_batch(images: torch.Tensor | np.ndarray):
    """Images as float (N, C, H, W) in [0, 1], and a function that returns a result to the input's form."""
    if isinstance(images, np.ndarray):
        if images.dtype not in (np.uint8, np.float32):
            raise TypeError(f"images should be uint8 or float32 (in [0, 1]), got dtype {images.dtype}")
        shape = images.shape
        if images.ndim == 2:
            nhwc = images[None, :, :, None]
        elif images.ndim == 3 and shape[2] in (1, 3):
            nhwc = images[None]
        elif images.ndim == 4 and shape[3] in (1, 3):
            nhwc = images
        else:
            raise ValueError(f"numpy images should be (H, W), (H, W, C) or (N, H, W, C) with C in (1, 3), got {shape}")
        batch = torch.from_numpy(np.array(nhwc, dtype=np.float32)).permute(0, 3, 1, 2)  # a copy (may be read-only)
        uint8 = images.dtype == np.uint8

        def restore(out: torch.Tensor) -> np.ndarray:
            array = out.permute(0, 2, 3, 1)
            array = (array * 255).round().clamp(0, 255).to(torch.uint8) if uint8 else array.float()
            return array.numpy().reshape(shape)

        return (batch / 255 if uint8 else batch), restore
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images should be a torch.Tensor or a numpy array, got {type(images).__name__}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise TypeError(f"images should be uint8 or float (in [0, 1]), got dtype {images.dtype}")
    batch = as_image_batch(images)
    shape, dtype, device = images.shape, images.dtype, images.device

    def restore(out: torch.Tensor) -> torch.Tensor:
        out = (out * 255).round().clamp(0, 255).to(torch.uint8) if dtype == torch.uint8 else out.to(dtype)
        return out.reshape(shape).to(device)

    batch = batch.cpu()
    return (batch.float() / 255 if dtype == torch.uint8 else batch.float()), restore


def _mask_batch(masks: torch.Tensor | np.ndarray, image_shape: torch.Size) -> torch.Tensor:
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


def _generator(seed: int | None) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator

