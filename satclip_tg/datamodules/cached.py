"""LightningDataModule for SatCLIP pretraining on cached backbone features.

With a frozen backbone only the projection and the location encoder train, so
the backbone's pooled features of a fixed set of views per tile can be
computed once (``satclip-tg cache-features``) and reused for every epoch.
`CachedFeatureDataModule` serves them: the same train/validation split as
`S2100KDataModule` with the same seed, one random training view per tile per
epoch, the evaluation view for validation, and coordinate jitter applied live.
"""

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets.utils import Sample

from ..features.manifest import FeatureCacheError, FeatureCacheManifest
from ..features.reader import FeatureCache
from ..image.backbones import backbone_digest
from ..renamed_arguments import task_hparam
from ..transforms.augmentation import jitter_points
from .s2_100k import check_loader_arguments, train_val_indices

__all__ = ['CachedFeatureDataModule', 'CachedFeatureDataset', 'PointJitter']


class CachedFeatureDataset(Dataset[Sample]):
    """Cached features of some tiles, fetched a whole batch at a time.

    Each item is one tile: in training one of its training views (1 .. V-1)
    drawn at random on every fetch (each tile is fetched once per epoch), else
    its evaluation view 0. A batch is an index gather, done in
    ``__getitems__`` (which `torch.utils.data.DataLoader` calls with the
    batch's indices), so it is as fast on a device-resident cache as on a
    host one.
    """

    def __init__(
        self, features: Tensor, points: Tensor, tiles: Tensor, train: bool
    ) -> None:
        """Initialize the data set.

        Args:
            features: ``(N, V, D)`` features of every tile of the cache.
            points: ``(N, 2)`` float32 (lon, lat) of every tile, same device.
            tiles: ``(M,)`` int64 indices of the tiles of this data set.
            train: Draw a random training view (else view 0).
        """
        self.features = features
        self.points = points
        self.tiles = tiles.to(features.device)
        self.train = train
        self.views = int(features.shape[1])

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitems__(self, positions: list[int]) -> Sample:
        """Gather one batch.

        Args:
            positions: Positions in this data set.

        Returns:
            ``{'features': (B, D), 'point': (B, 2), 'index': (B,), 'view':
            (B,)}``: features in the cache's dtype, float32 points, the tile
            indices and the views served.
        """
        device = self.features.device
        where = torch.as_tensor(positions, dtype=torch.int64).to(device)
        tiles = self.tiles[where]
        if self.train and self.views > 1:
            views = torch.randint(1, self.views, (len(tiles),), device=device)
        else:
            views = torch.zeros(len(tiles), dtype=torch.int64, device=device)
        return {
            'features': self.features[tiles, views],
            'point': self.points[tiles],
            'index': tiles,
            'view': views,
        }

    def __getitem__(self, position: int) -> Sample:
        """Return one sample.

        Args:
            position: Position in this data set.

        Returns:
            ``{'features': (D,), 'point': (2,), 'index': (), 'view': ()}``.
        """
        batch = self.__getitems__([position])
        return {key: value[0] for key, value in batch.items()}


def _as_batch(batch: Any) -> Any:
    # __getitems__ already returns a whole batch.
    return batch


class PointJitter(nn.Module):
    """Symmetric uniform coordinate jitter of a batch's ``point`` (training)."""

    def __init__(self, half_width: float) -> None:
        """Initialize the jitter.

        Args:
            half_width: Half-width in degrees; 0 leaves points unchanged.
        """
        super().__init__()
        self.half_width = half_width

    def forward(self, batch: Sample) -> Sample:
        """Jitter the points.

        Args:
            batch: With ``point`` (B, 2) (lon, lat) degrees.

        Returns:
            A new dict with jittered points (see `jitter_points`).
        """
        out = dict(batch)
        out['point'] = jitter_points(batch['point'], self.half_width)
        return out


class CachedFeatureDataModule(NonGeoDataModule):
    """SatCLIP pretraining data from a feature cache.

    Splits and views:

    * ``fit``: the train/validation split of `S2100KDataModule` with the same
      ``val_split_pct`` and ``seed`` (`train_val_indices`), so the same tiles
      land in each part. Each epoch, training serves every training tile once,
      in random order, with one of its training views (1 .. V-1) drawn at
      random; validation serves view 0 (the centre crop).
    * ``validate``: the validation part, view 0.
    * ``test`` and ``predict``: every tile, view 0.

    Tiles that were unreadable when the cache was made (NaN features) are left
    out after the split. Coordinate jitter is applied live to training batches
    after the transfer to the device.

    Batches::

        {'features': (B, D),   # the cache's dtype (float16 by default)
         'point': float32 (B, 2),
         'index': int64 (B,),  # tile (row of index.csv)
         'view': int64 (B,)}   # view served

    With ``device_resident: true`` the whole cache is moved to the training
    device at setup (S2-100K at V = 16: 1.2 GB for ViT-S/16 features in
    float16, 1.6 GB for ResNet-18, 6.6 GB for ResNet-50) and a batch is an
    index gather on the device, with no DataLoader workers.

    When the trainer's model is a `SatCLIPPretraining`, its backbone settings
    must match the cache's manifest (``model``, ``weights``, ``model_args``,
    ``in_channels``, and the digest of the frozen weights), or setup fails
    with the differences.
    """

    def __init__(
        self,
        features: str = 'features',
        batch_size: int = 8192,
        num_workers: int = 0,
        val_split_pct: float = 0.1,
        seed: int = 0,
        coordinate_jitter: float = 0.01,
        device_resident: bool = False,
        pin_memory: bool = False,
    ) -> None:
        """Initialize a new CachedFeatureDataModule instance.

        Args:
            features: The cache folder (``satclip-tg cache-features --output``).
            batch_size: Samples per batch (per device).
            num_workers: DataLoader workers (ignored when ``device_resident``).
            val_split_pct: Fraction held out for validation, in [0, 1); use
                the value of the live data module to get its split.
            seed: Seed of the split (as the live data module's).
            coordinate_jitter: Half-width in degrees of the symmetric uniform
                noise added to training points; 0 for none.
            device_resident: Keep the whole cache on the training device.
            pin_memory: Pinned host memory for faster copies to a GPU (host
                caches only).

        Raises:
            ValueError: If an argument is out of range.
        """
        check_loader_arguments(
            batch_size, num_workers, val_split_pct, coordinate_jitter
        )
        # NonGeoDataModule for its loader methods; the data set class is not a
        # TorchGeo NonGeoDataset, and setup builds it itself.
        super().__init__(
            CachedFeatureDataset,  # type: ignore[arg-type]
            batch_size,
            num_workers,
        )
        self.features = features
        self.val_split_pct = val_split_pct
        self.seed = seed
        self.coordinate_jitter = coordinate_jitter
        self.device_resident = device_resident
        self.pin_memory = pin_memory
        self.manifest: FeatureCacheManifest | None = None
        self._tensors: tuple[Tensor, Tensor, Tensor] | None = None
        self.train_aug = PointJitter(coordinate_jitter)
        self.aug = PointJitter(0.0)

    def prepare_data(self) -> None:
        """Nothing to download: the cache is made by ``cache-features``."""

    def _check_model(self, manifest: FeatureCacheManifest) -> None:
        trainer = getattr(self, 'trainer', None)
        model = getattr(trainer, 'lightning_module', None) if trainer else None
        hparams: dict[str, Any] = dict(getattr(model, 'hparams', {}) or {})
        image_encoder = getattr(model, 'image_encoder', None)
        # Only a pretraining task (an image encoder named by its 'model', or
        # by 'backbone' before the rename) is checked: other TorchGeo tasks
        # also call their network 'model'.
        if task_hparam(hparams, 'model') is None or not isinstance(
            image_encoder, nn.Module
        ):
            return
        differences = manifest.model_differences(
            hparams, backbone_digest(image_encoder)
        )
        if differences:
            raise FeatureCacheError(
                f'the feature cache {self.features} was made with another image '
                f'backbone than this task uses: {"; ".join(differences)}. Set '
                f"model.init_args to the cache's settings, or rebuild the cache "
                f'with satclip-tg cache-features --config <this training config>'
            )

    def _device(self) -> torch.device:
        trainer = getattr(self, 'trainer', None)
        if self.device_resident and trainer is not None:
            return torch.device(trainer.strategy.root_device)
        return torch.device('cpu')

    def _load(self) -> tuple[Tensor, Tensor, Tensor]:
        """Read the cache once: features, points and the readable tiles."""
        if self._tensors is None:
            cache = FeatureCache(self.features)
            self.manifest = cache.manifest
            self._check_model(cache.manifest)
            features = torch.from_numpy(cache.features())
            points = torch.from_numpy(cache.points()).float()
            readable = ~torch.isnan(features[:, 0, 0].float())
            device = self._device()
            self._tensors = (features.to(device), points.to(device), readable)
        else:
            assert self.manifest is not None
            self._check_model(self.manifest)
        return self._tensors

    def setup(self, stage: str) -> None:
        """Read the cache and make the data sets of the stage.

        Args:
            stage: Either 'fit', 'validate', 'test', or 'predict'.

        Raises:
            FeatureCacheError: If the cache is missing, incomplete, or was made
                with other backbone settings than the task's.
            ValueError: If the split leaves a part empty.
        """
        features, points, readable = self._load()
        tiles = len(readable)

        def part(indices: list[int], train: bool) -> CachedFeatureDataset:
            kept = torch.as_tensor(indices, dtype=torch.int64)
            kept = kept[readable[kept]]
            return CachedFeatureDataset(features, points, kept, train)

        if stage in ('fit', 'validate'):
            train, val = train_val_indices(tiles, self.val_split_pct, self.seed)
            self.train_dataset = part(train, train=True)
            self.val_dataset = part(val, train=False) if val else None
        else:
            every = part(list(range(tiles)), train=False)
            self.test_dataset = every
            self.predict_dataset = every

    def _dataloader_factory(self, split: str) -> DataLoader[Sample]:
        """Create the DataLoader of one split.

        Args:
            split: Either 'train', 'val', 'test', or 'predict'.

        Returns:
            The DataLoader: shuffled with the last incomplete batch dropped
            (when there is more than one) in training.
        """
        dataset: CachedFeatureDataset = self._valid_attribute(f'{split}_dataset')
        batch_size: int = self._valid_attribute(f'{split}_batch_size', 'batch_size')
        train = split == 'train'
        on_host = dataset.features.device.type == 'cpu'
        workers = self.num_workers if on_host else 0
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train,
            num_workers=workers,
            collate_fn=_as_batch,
            drop_last=train and len(dataset) > batch_size,
            persistent_workers=workers > 0,
            pin_memory=self.pin_memory and on_host,
        )

    def val_dataloader(self) -> DataLoader[Sample]:
        """Return the validation DataLoader.

        Returns:
            The DataLoader, or an empty list when ``val_split_pct`` is 0.
        """
        if self.val_split_pct == 0:
            return []  # type: ignore[return-value]
        return self._dataloader_factory('val')
