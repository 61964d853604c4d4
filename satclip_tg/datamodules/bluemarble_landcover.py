"""Data module of Blue Marble patches labelled with MODIS land cover.

Splits are the benchmark's (`satclip_tg.datasets.splits.make_splits`): one
fold is the test set, a seeded random ``val_fraction`` of the other patches
validates, the rest trains. With ``split='spatial-block'`` (the default)
whole 10-degree cells are held out, so a model cannot score by remembering
its neighbours.
"""

from typing import Any, Literal

import numpy as np
from torch import nn
from torch.utils.data import Subset
from torchgeo.datamodules import NonGeoDataModule

from ..datasets.bluemarble_landcover import BlueMarbleLandCover
from ..datasets.splits import make_splits

__all__ = ['BlueMarbleLandCoverDataModule']


class BlueMarbleLandCoverDataModule(NonGeoDataModule):
    """`BlueMarbleLandCover` under the benchmark's geographic splits.

    Batches: ``{'image': (B, 3, H, W) scaled to 0-1 by ``aug``, 'label':
    int64 (B,), 'point': float32 (B, 2) (lon, lat) degrees}``. The images
    are divided by 255 (TorchGeo's default ``aug``).
    """

    def __init__(
        self,
        root: str = 'data/bluemarble-demo',
        split: Literal['random', 'spatial-block', 'leave-one-continent-out'] = (
            'spatial-block'
        ),
        num_folds: int = 5,
        fold: int = 0,
        block_size: float = 10.0,
        val_fraction: float = 0.1,
        seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
        transforms: nn.Module | None = None,
        **kwargs: Any,
    ) -> None:
        """Initialize the data module.

        Args:
            root: A Blue Marble folder (``index.csv``, ``images/``).
            split: The split strategy; leave-one-continent-out holds out the
                ``fold``-th continent in sorted order.
            num_folds: Folds of random and spatial-block splits.
            fold: Which fold is the test set.
            block_size: Spatial block size in degrees.
            val_fraction: Fraction of the non-test patches that validate.
            seed: Seed of the splits and the validation draw.
            batch_size: Patches per batch.
            num_workers: DataLoader workers.
            transforms: Applied to each sample (e.g. a `LocationEmbedding`);
                a module, so that YAML can give it by ``class_path``.
            **kwargs: Passed to `BlueMarbleLandCover` (e.g. ``cache_dir``).

        Raises:
            ValueError: If ``val_fraction`` is not in [0, 1).
        """
        if not 0 <= val_fraction < 1:
            raise ValueError(f'val_fraction must be in [0, 1), got {val_fraction}')
        super().__init__(
            BlueMarbleLandCover,
            batch_size,
            num_workers,
            root=root,
            transforms=transforms,
            **kwargs,
        )
        self.split = split
        self.num_folds = num_folds
        self.fold = fold
        self.block_size = block_size
        self.val_fraction = val_fraction
        self.seed = seed

    def setup(self, stage: str) -> None:
        """Read the patches and split them (once: the splits serve all stages).

        Args:
            stage: ``'fit'``, ``'validate'``, ``'test'`` or ``'predict'``.

        Raises:
            ValueError: If ``fold`` is out of range.
        """
        if self.dataset is not None:
            return
        dataset = BlueMarbleLandCover(**self.kwargs)
        groups = None
        if self.split == 'leave-one-continent-out':
            from ..datasets.downstream.readers import continent_of

            groups = continent_of(dataset.points)
        folds = make_splits(
            self.split,
            dataset.points,
            k=self.num_folds,
            block_size=self.block_size,
            seed=self.seed,
            groups=groups,
        )
        if not 0 <= self.fold < len(folds):
            raise ValueError(f'fold must be in [0, {len(folds)}), got {self.fold}')
        rest = np.random.default_rng(self.seed).permutation(folds[self.fold].train)
        n_val = round(self.val_fraction * len(rest))
        self.dataset = dataset
        self.train_dataset = Subset(dataset, np.sort(rest[n_val:]).tolist())
        self.val_dataset = Subset(dataset, np.sort(rest[:n_val]).tolist())
        self.test_dataset = Subset(dataset, folds[self.fold].test.tolist())
        self.predict_dataset = dataset
