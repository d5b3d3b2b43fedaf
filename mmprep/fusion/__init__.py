"""Fusion training on mmprep shards: per-modality encoders, five fusion strategies, matching losses.

``mmprep train CONFIG.yaml [--ablate]`` runs :func:`mmprep.fusion.trainer.train`.
"""

from mmprep.fusion.config import TrainConfig, load_config, parse_config
from mmprep.fusion.model import FusionModel
from mmprep.fusion.strategies import STRATEGIES
from mmprep.fusion.trainer import Run, train

__all__ = ["STRATEGIES", "FusionModel", "Run", "TrainConfig", "load_config", "parse_config", "train"]
