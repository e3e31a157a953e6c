"""``GANAug``: a trained generator, loaded from a run or an export, ready to sample."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open

from ganaug._util.checkpoint_file import (
    CheckpointError,
    read_checkpoint,
    read_checkpoint_info,
    strip_prefix,
    write_model_folder,
)
from ganaug._util.images import as_image_batch, check_float_values, check_min_size
from ganaug._util.model_files import EXPORT_FORMAT, EXPORT_WEIGHTS_FILE, ModelFiles, find_model_files
from ganaug._util.rng import seeded, torch_generator
from ganaug._util.validate import check_int, check_positive_int, check_truncation, label_tensor, resolve_device
from ganaug.nets.build import BackboneSpec, GeneratorSpec, build_extractor, build_generator
from ganaug.nets.features import FeatureExtractor
from ganaug.nets.generator import Generator, to_uint8
from ganaug.nets.instances import draw_instance_features
from ganaug.sampling import completion, sharing

__all__ = ["CPU_PASS_SIZE", "SEEDED_PASS_SIZE", "GANAug", "model_info", "read_model_info"]

MODEL_PREFIXES = ("g_ema", "extractor", "bank")  # the tensors of a checkpoint that make the model
CPU_PASS_SIZE = 32  # images per generator pass on a CPU: small passes keep the activations in cache
# Convolution and matrix kernels may round differently for different batch sizes (seen on AVX-512
# CPUs: one intensity level in a few pixels of a thousand), so sample_seeded runs every pass at one
# fixed size, padding the last, to keep its promise that an image depends only on its (label, seed).
SEEDED_PASS_SIZE = {"cpu": 16, "cuda": 256}


def model_info(generator: GeneratorSpec, backbone: BackboneSpec, classes: Sequence[str], step: int,
               data: dict[str, Any], versions: dict[str, Any]) -> dict[str, Any]:
    """What a model needs to rebuild itself, as exports and training checkpoints store it."""
    return {"generator": generator.to_dict(), "backbone": backbone.to_dict(), "classes": list(classes), "step": step,
            "data": data, "versions": versions}


class GANAug:
    """A trained class- (and instance-) conditional generator: the EMA weights, plus what sampling needs.

    Build one with :meth:`from_pretrained` (a run directory or an export) or get it from
    :func:`ganaug.train`. Sampling is deterministic for a seed; :meth:`sample_seeded` makes each
    image depend only on its own label and seed.
    """

    def __init__(self, generator: Generator, extractor: FeatureExtractor | None, bank_features: torch.Tensor | None,
                 bank_labels: torch.Tensor | None, info: dict, device: str | torch.device | None = None):
        self.device = resolve_device(device)
        # channels_last is oneDNN's and cuDNN's fast convolution layout (docs/benchmarks.md)
        self.generator = generator.eval().requires_grad_(False).to(self.device, memory_format=torch.channels_last)
        self.extractor = None if extractor is None else extractor.to(self.device)
        self.bank_features = bank_features
        self.bank_labels = bank_labels
        self.info = info

    # --- loading and saving ----------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> GANAug:
        """Load a run directory (its latest checkpoint), a folder written by :meth:`save_pretrained`, or a Hub model.

        A ``path`` that is not a folder here is read as a Hugging Face Hub name, ``org/name`` or
        ``org/name@revision`` (a model pushed by :meth:`push_to_hub`): only its ``model.safetensors``
        and ``config.json`` are downloaded, into the local Hugging Face cache, from which later loads
        need no network. Private repositories need ``HF_TOKEN`` or a saved login.

        Raises:
            FileNotFoundError: ``path`` does not exist and cannot be a Hub name.
            ganaug.HubError: a Hub name that cannot be had: no such repository or revision, or
                not cached and the Hub unreachable (the message names the ways out).
            CheckpointError: it holds no ganaug model, or a damaged one.
        """
        files = find_model_files(path)
        tensors, info = read_checkpoint(files.weights, files.file_format)
        if files.kind == "run":
            bank = tensors.get("bank.features")
            info = _model_info_of_run(files, info, 0 if bank is None else bank.shape[1])
            tensors = {k: v for k, v in tensors.items() if k.split(".")[0] in MODEL_PREFIXES}
        with seeded(None):  # building the modules draws initial weights: not from the caller's stream
            generator = build_generator(GeneratorSpec(**info["generator"]))
            generator.load_state_dict(strip_prefix(tensors, "g_ema"))
            extractor_state = strip_prefix(tensors, "extractor")
            extractor = (build_extractor(BackboneSpec(**info["backbone"]), state_dict=extractor_state)
                         if extractor_state else None)
        return cls(generator, extractor, tensors.get("bank.features"), tensors.get("bank.labels"), info, device)

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Export the EMA generator, the feature network and the instance bank to ``path/model.safetensors``.

        The model's config (generator shape, backbone, classes, training step, data source,
        versions) travels in the file's metadata and, for people, in ``path/config.json``.
        """
        tensors = {f"g_ema.{k}": v for k, v in self.generator.state_dict().items()}
        if self.extractor is not None:
            tensors.update({f"extractor.{k}": v for k, v in self.extractor.state_dict().items()})
        if self.bank_features is not None:
            tensors["bank.features"] = self.bank_features
            tensors["bank.labels"] = self.bank_labels
        return write_model_folder(path, EXPORT_WEIGHTS_FILE, tensors, self.info, EXPORT_FORMAT)

    def push_to_hub(self, repo_id: str, private: bool | None = None, token: str | bool | None = None,
                    license: str = sharing.DEFAULT_LICENSE, evaluation: dict | str | os.PathLike | None = None,
                    commit_message: str | None = None) -> str:
        """Upload this model to the Hugging Face Hub repository ``repo_id`` (created when missing), in one commit.

        It uploads the export (``model.safetensors``, ``config.json``), a sample grid and a model
        card with the Hub's metadata (see :mod:`ganaug.sampling.sharing`). Load it back anywhere with
        ``GANAug.from_pretrained(repo_id)``.

        Args:
            repo_id: ``org/name``.
            private: make a new repository private.
            token: a token with write access; None: ``HF_TOKEN`` or the saved login (``hf auth login``).
            license: the card's licence, a Hub licence id ("other": the training data's licence applies).
            evaluation: a :func:`ganaug.evaluate` report or the JSON file of ``ganaug eval --out``, for the card.
            commit_message: the commit's message.

        Returns:
            The commit's URL.
        """
        return sharing.push_to_hub(self, repo_id, private=private, token=token, license=license,
                                   evaluation=evaluation, commit_message=commit_message)

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

        A model trained with ``instance_dropout`` makes them with the null instance condition; an
        instance-conditional one trained without it draws an instance feature of the class from
        its bank for each image (:attr:`class_samples_use_bank`).

        Args:
            num: how many images.
            labels: one class for all, one label per image, or None for classes in turn (0, 1, ...).
            seed: makes the output reproducible; None draws a fresh seed.
            truncation: in (0, 1]; scales the noise, trading diversity for fidelity.
            batch_size: images per generator pass (on the CPU at most ``CPU_PASS_SIZE``).

        Returns:
            uint8 (num, channels, resolution, resolution).
        """
        num = check_int("num", num, low=0)
        truncation = check_truncation(truncation)
        labels = self.labels_for(num, labels)
        rng = torch_generator(seed)
        z = torch.randn(num, self.generator.z_dim, generator=rng) * truncation
        instance = (draw_instance_features(self.bank_features, self.bank_labels, labels, rng)
                    if self.class_samples_use_bank else None)
        return self._generate(z, labels, instance, check_positive_int("batch_size", batch_size))

    @property
    def class_samples_use_bank(self) -> bool:
        """Whether class samples draw an instance condition from the bank: an instance-conditional model not
        trained with ``instance_dropout`` (one that was samples its classes with the null condition, no instance)."""
        return self.instance_conditional and not self.generator.instance_optional

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
        labels = self.labels_for(len(seeds), labels)
        truncation = check_truncation(truncation)
        if len(seeds) and int(seeds.min()) < 0:
            raise ValueError(f"seeds should be non-negative, got {int(seeds.min())}")
        z = torch.empty(len(seeds), self.generator.z_dim)
        instance = torch.empty(len(seeds), self.generator.instance_dim) if self.class_samples_use_bank else None
        for i, seed in enumerate(seeds.tolist()):
            rng = torch.Generator().manual_seed(seed)
            z[i] = torch.randn(self.generator.z_dim, generator=rng) * truncation
            if instance is not None:
                instance[i:i + 1] = draw_instance_features(self.bank_features, self.bank_labels, labels[i:i + 1], rng)
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
            batch_size: images per generator pass (on the CPU at most ``CPU_PASS_SIZE``).

        Returns:
            uint8 (N * num_per_image, channels, resolution, resolution), the variants of image 0
            first.
        """
        if not self.instance_conditional:
            raise ValueError("sample_like needs an instance-conditional model (TrainConfig.instance_conditioning)")
        num_per_image = check_positive_int("num_per_image", num_per_image)
        features = self.embed(images)
        labels = self.infer_labels(features) if labels is None else self.labels_for(len(features), labels)
        rng = torch_generator(seed)
        features = features.repeat_interleave(num_per_image, dim=0)
        labels = labels.repeat_interleave(num_per_image)
        z = torch.randn(len(labels), self.generator.z_dim, generator=rng)
        return self._generate(z, labels, features.cpu(), check_positive_int("batch_size", batch_size))

    def complete(self, images: torch.Tensor | np.ndarray, masks: torch.Tensor | np.ndarray,
                 labels: int | Sequence[int] | torch.Tensor | None = None, steps: int = 30, seed: int | None = None,
                 feather: int = 2, optimize_condition: bool = True, lr: float = 0.05, feature_weight: float = 1.0,
                 label_candidates: int = 3, batch_size: int = 64) -> torch.Tensor | np.ndarray:
        """Fill the masked region of images with generated content conditioned on the visible part.

        The features of the image with its hole pre-filled by diffusion inpainting (OpenCV
        Navier-Stokes) become the generator's instance condition; ``steps`` Adam
        steps on the noise (and the condition) then fit the visible pixels and their features;
        the result fills the hole through a mask feathered over ``feather`` pixels. See
        :mod:`ganaug.sampling.completion`.

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
        if not self.instance_conditional or self.extractor is None:
            raise ValueError("complete needs an instance-conditional model with its feature network")
        settings = completion.CompletionSettings(
            steps=check_int("steps", steps, low=0), feather=check_int("feather", feather, low=0),
            optimize_condition=optimize_condition, lr=lr, feature_weight=feature_weight,
            candidates=check_int("label_candidates", label_candidates, low=1),
            batch_size=check_int("batch_size", batch_size, low=1))
        return completion.complete(self, images, masks, labels, seed, settings)

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Instance features of images (the backbone's pooled features): float (N, instance_dim) on the CPU."""
        if self.extractor is None:
            raise ValueError("this model has no feature network")
        images = check_float_values("images", as_image_batch(images))
        check_min_size("images", images.shape[-2], images.shape[-1])
        if len(images) == 0:
            return torch.empty(0, self.extractor.embed_dim)
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

    def labels_for(self, num: int, labels: Any) -> torch.Tensor:
        """int64 (num,) labels: ``labels`` checked against this model's classes (one label is repeated), or
        classes in turn (0, 1, ...) when it is None."""
        if labels is None:
            return torch.arange(num) % self.num_classes
        return label_tensor(labels, self.num_classes, num)

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
            batch_size = CPU_PASS_SIZE
        out = []
        for i in range(0, len(z), batch_size):
            part = None if instance is None else instance[i:i + batch_size].to(self.device)
            images = self.generator(z[i:i + batch_size].to(self.device), labels[i:i + batch_size].to(self.device), part)
            out.append(to_uint8(images))
        if not out:
            return torch.empty(0, self.channels, self.resolution, self.resolution, dtype=torch.uint8)
        return torch.cat(out)

    def __repr__(self) -> str:
        return (f"GANAug(classes={self.num_classes}, resolution={self.resolution}, channels={self.channels}, "
                f"instance_conditional={self.instance_conditional}, step={self.info.get('step')})")


def read_model_info(path: str | os.PathLike) -> dict[str, Any]:
    """A saved model's description (generator, backbone, classes, step, data, versions), read without its weights."""
    files = find_model_files(path)
    info = read_checkpoint_info(files.weights, files.file_format)
    if files.kind == "export":
        return info
    with safe_open(str(files.weights), framework="pt") as handle:
        bank_dim = handle.get_slice("bank.features").get_shape()[1] if "bank.features" in handle.keys() else 0  # noqa: SIM118
    return _model_info_of_run(files, info, bank_dim)


def _model_info_of_run(files: ModelFiles, checkpoint_info: dict[str, Any], bank_dim: int) -> dict[str, Any]:
    """The model description in a training checkpoint; for a run whose checkpoint predates holding it, rebuilt
    from its config.json."""
    if "model" in checkpoint_info:
        return checkpoint_info["model"]
    if files.config is None:
        raise FileNotFoundError(f"the checkpoint of {str(files.folder)!r} does not describe its model and its "
                                "config.json is missing")
    try:
        run_info = json.loads(files.config.read_text())
        config = run_info["config"]
        generator = GeneratorSpec(num_classes=len(run_info["classes"]), resolution=run_info["resolution"],
                                  channels=run_info["channels"], z_dim=config["z_dim"], embed_dim=config["embed_dim"],
                                  instance_dim=bank_dim, base_channels=config["g_channels"],
                                  min_channels=config["g_min_channels"], norm=config.get("g_norm", "group"),
                                  z_to_blocks=config.get("z_to_blocks", False),
                                  instance_optional=bool(bank_dim) and config.get("instance_dropout", 0) > 0)
        backbone = BackboneSpec(name=config["backbone"], out_indices=config["backbone_out_indices"],
                                input_size=config["backbone_input_size"], origin=run_info["backbone"]["origin"])
        return model_info(generator, backbone, run_info["classes"], checkpoint_info["step"], run_info["data"],
                          run_info["versions"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, IndexError) as error:
        raise CheckpointError(f"the checkpoint of {str(files.folder)!r} does not describe its model, and its "
                              f"{str(files.config)!r} is not a ganaug run's config ({type(error).__name__}: "
                              f"{error}); was the file replaced?") from error
