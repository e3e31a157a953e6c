"""Feature space: features extracted once and cached, ``FeatureGAN`` over them, and ``FeatureDataset``."""

from ganaug.feature_space.feature_dataset import FeatureDataset, extract_features, load_features, save_features
from ganaug.feature_space.feature_gan import FeatureGAN, FeatureGANConfig

__all__ = ["FeatureDataset", "FeatureGAN", "FeatureGANConfig", "extract_features", "load_features", "save_features"]
