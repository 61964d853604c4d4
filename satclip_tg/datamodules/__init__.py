"""LightningDataModules of satclip-tg (TorchGeo ``BaseDataModule`` subclasses)."""

from .s2_100k import S2100KDataModule, SatCLIPBatchAugmentation, SkipUnreadableCollate

__all__ = ['S2100KDataModule', 'SatCLIPBatchAugmentation', 'SkipUnreadableCollate']
