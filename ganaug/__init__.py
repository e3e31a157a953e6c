"""ganaug: generative data augmentation with a class- and feature-conditional GAN and timm feature networks."""

from ganaug.data import DataSource, ImageDataset, load_dataset, load_fashion_mnist
from ganaug.datasets import ExpandedDataset, SyntheticDataset
from ganaug.evaluation import EvalConfig, evaluate
from ganaug.feature_dataset import FeatureDataset, extract_features
from ganaug.feature_gan import FeatureGAN, FeatureGANConfig
from ganaug.features import FeatureExtractor, WeightsUnavailableError
from ganaug.gan import GANAug
from ganaug.pretrain import PretrainConfig, PretrainResult, pretrain_extractor
from ganaug.sample_bank import SampleBank
from ganaug.training import TrainConfig, train

__version__ = "0.1.0"

__all__ = [
    "DataSource",
    "EvalConfig",
    "ExpandedDataset",
    "FeatureDataset",
    "FeatureExtractor",
    "FeatureGAN",
    "FeatureGANConfig",
    "GANAug",
    "ImageDataset",
    "PretrainConfig",
    "PretrainResult",
    "SampleBank",
    "SyntheticDataset",
    "TrainConfig",
    "WeightsUnavailableError",
    "__version__",
    "evaluate",
    "extract_features",
    "load_dataset",
    "load_fashion_mnist",
    "pretrain_extractor",
    "train",
]
