"""LightningDataModules of satclip-tg (TorchGeo ``BaseDataModule`` subclasses)."""

from .points import PointLabelDataModule, PointLabelDataset
from .s2_100k import S2100KDataModule, SatCLIPBatchAugmentation, SkipUnreadableCollate

__all__ = [
    'PointLabelDataModule',
    'PointLabelDataset',
    'S2100KDataModule',
    'SatCLIPBatchAugmentation',
    'SkipUnreadableCollate',
]
