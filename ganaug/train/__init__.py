"""Training: the config, the loop (D and G steps), checkpoints and resume, torchrun, and backbone pretraining."""

from ganaug.train.config import TrainConfig
from ganaug.train.loop import train
from ganaug.train.pretrain import PretrainConfig, PretrainResult, pretrain_extractor

__all__ = ["PretrainConfig", "PretrainResult", "TrainConfig", "pretrain_extractor", "train"]
