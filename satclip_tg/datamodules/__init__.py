"""LightningDataModules of satclip-tg (TorchGeo ``BaseDataModule`` subclasses)."""

from ..transforms.augmentation import SatCLIPBatchAugmentation
from .bluemarble_landcover import BlueMarbleLandCoverDataModule
from .cached import CachedFeatureDataModule, CachedFeatureDataset
from .points import PointLabelDataModule, PointLabelDataset
from .s2_100k import S2100KDataModule, SkipUnreadableCollate, train_val_indices

__all__ = [
    'BlueMarbleLandCoverDataModule',
    'CachedFeatureDataModule',
    'CachedFeatureDataset',
    'PointLabelDataModule',
    'PointLabelDataset',
    'S2100KDataModule',
    'SatCLIPBatchAugmentation',
    'SkipUnreadableCollate',
    'train_val_indices',
]
