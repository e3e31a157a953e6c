"""ganaug: generative data augmentation with a class- and feature-conditional GAN and timm feature networks.

The public surface is here; the sub-packages show the layers (see docs/design.md):
``data`` -> ``nets`` -> ``sampling`` -> ``train`` -> ``adapters``, ``eval``, ``feature_space`` -> ``cli``.
The pipeline adapters are imported on their own: ``ganaug.albumentations`` and
``ganaug.transforms`` (torchvision.transforms.v2).
"""

from ganaug._util.hub import HubError
from ganaug._util.versions import __version__
from ganaug.adapters.datasets import ExpandedDataset, SyntheticDataset
from ganaug.data import DataSource, ImageDataset, load_dataset, load_fashion_mnist
from ganaug.eval import EvalConfig, evaluate
from ganaug.feature_space import FeatureDataset, FeatureGAN, FeatureGANConfig, extract_features
from ganaug.nets import FeatureExtractor, WeightsUnavailableError
from ganaug.sampling import GANAug, SampleBank, VariantBank
from ganaug.train import PretrainConfig, PretrainResult, TrainConfig, pretrain_extractor, train

__all__ = [
    "DataSource",
    "EvalConfig",
    "ExpandedDataset",
    "FeatureDataset",
    "FeatureExtractor",
    "FeatureGAN",
    "FeatureGANConfig",
    "GANAug",
    "HubError",
    "ImageDataset",
    "PretrainConfig",
    "PretrainResult",
    "SampleBank",
    "SyntheticDataset",
    "TrainConfig",
    "VariantBank",
    "WeightsUnavailableError",
    "__version__",
    "evaluate",
    "extract_features",
    "load_dataset",
    "load_fashion_mnist",
    "pretrain_extractor",
    "train",
]
