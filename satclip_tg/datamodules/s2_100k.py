"""LightningDataModule for SatCLIP pretraining on S2-100K or own imagery.

Tiles are read raw, in their on-disk dtype (uint16 for S2-100K: 1.57 MB per
tile instead of 3.15 MB as float32), by the CPU workers; all preprocessing and
augmentation runs batched on the accelerator, in TorchGeo's
`on_after_batch_transfer`, through the per-split ``train_aug`` / ``val_aug`` /
``test_aug`` / ``predict_aug`` callables (`SatCLIPBatchAugmentation`), a
chunk of the batch at a time.

At setup the module reads the header of every tile (`check_tiles`) and
reports every missing, unreadable or odd tile at once, and works out the host
memory its loaders hold in flight; it fails before loading anything when
either is wrong.
"""

import inspect
import math
import warnings
from collections import Counter
from collections.abc import Callable, Sequence, Sized
from dataclasses import dataclass
from typing import Any

import torch
from matplotlib.figure import Figure
from torch.utils.data import DataLoader, Dataset, Subset, default_collate
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets.utils import Sample

from ..datasets.s2_100k import (
    SatCLIPImageryDataset,
    TileCheckError,
    UnreadableTileWarning,
)
from ..resources import HostMemoryError, available_memory_bytes, format_bytes
from ..transforms.augmentation import (
    B10_INDEX,
    SatCLIPBatchAugmentation,
    check_normalisation,
)

__all__ = [
    'B10_INDEX',
    'SKIPPED_KEY',
    'HostMemoryError',
    'S2100KDataModule',
    'SatCLIPBatchAugmentation',
    'SkipUnreadableCollate',
    'check_loader_arguments',
    'train_val_indices',
]

#: Band count of S2-100K (Sentinel-2 L2A, no B10).
S2_100K_BANDS = 12

#: Key of the loaders' batches that counts the unreadable tiles dropped from
#: them. `S2100KDataModule` removes it (and counts it in `skipped_tiles`)
#: before a batch reaches the model, which sees plain samples.
SKIPPED_KEY = 'skipped'

#: Splits of `S2100KDataModule.skipped_tiles`.
SPLITS = ('train', 'val', 'test', 'predict')


def _check_dataset_kwargs(kwargs: dict[str, Any]) -> None:
    """Refuse keyword arguments that `SatCLIPImageryDataset` does not take.

    Args:
        kwargs: The data module's further keyword arguments.

    Raises:
        ValueError: Naming the unknown arguments and the known ones, or if
            ``mode`` is not ``'both'`` (pretraining needs the images).
    """
    known = [
        name
        for name in inspect.signature(SatCLIPImageryDataset.__init__).parameters
        if name != 'self'
    ]
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise ValueError(
            f'S2100KDataModule got keyword argument(s) {unknown} that '
            f'SatCLIPImageryDataset does not take; it takes {known}'
        )
    if kwargs.get('mode', 'both') != 'both':
        raise ValueError(
            f"S2100KDataModule needs the images: the data set's mode must be "
            f"'both', got {kwargs['mode']!r}"
        )


def check_loader_arguments(
    batch_size: int, num_workers: int, val_split_pct: float, coordinate_jitter: float
) -> None:
    """Check the arguments every pretraining data module shares.

    Args:
        batch_size: Samples per batch, >= 1.
        num_workers: DataLoader workers, >= 0.
        val_split_pct: Validation fraction, in [0, 1).
        coordinate_jitter: Jitter half-width in degrees, finite and >= 0.

    Raises:
        ValueError: Naming the first argument out of range.
    """
    if not 0 <= val_split_pct < 1:
        raise ValueError(f'val_split_pct must be in [0, 1), got {val_split_pct}')
    if batch_size < 1:
        raise ValueError(f'batch_size must be at least 1, got {batch_size}')
    if num_workers < 0:
        raise ValueError(f'num_workers must be >= 0, got {num_workers}')
    if not (math.isfinite(coordinate_jitter) and coordinate_jitter >= 0):
        raise ValueError(
            f'coordinate_jitter must be a finite number >= 0 (degrees), got '
            f'{coordinate_jitter}'
        )


def train_val_indices(
    size: int, val_split_pct: float, seed: int
) -> tuple[list[int], list[int]]:
    """satclip-tg's random train/validation split of the pretraining data.

    The indices `torch.utils.data.random_split` gives for lengths
    ``[size - n_val, n_val]`` with a generator seeded with ``seed``, where
    ``n_val = int(size * val_split_pct)``. Every data module of satclip-tg
    splits with this function, so the live and the cached data modules put
    the same tiles in each part. The reference implementation splits with
    the same fractions but under the global seed and after dropping tiles
    under 10 kB, so its indices differ from these.

    Args:
        size: Number of tiles.
        val_split_pct: Fraction held out for validation, in [0, 1).
        seed: Seed of the split.

    Returns:
        ``(train, val)`` tile indices.

    Raises:
        ValueError: If a positive ``val_split_pct`` leaves no validation tile.
    """
    n_val = int(size * val_split_pct)
    if val_split_pct > 0 and n_val == 0:
        raise ValueError(
            f'val_split_pct={val_split_pct} of {size} samples leaves no validation '
            f'sample; raise it or set it to 0'
        )
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(size, generator=generator).tolist()
    return order[: size - n_val], order[size - n_val :]


@dataclass(frozen=True)
class SkipUnreadableCollate:
    """Collate samples, dropping the ``None`` of skipped (unreadable) tiles.

    The batch gets an extra entry ``'skipped'`` (`SKIPPED_KEY`): a 0-d int64
    tensor with the number of dropped samples. Collation runs in the
    DataLoader workers, separate processes, so the count travels with the
    batch to the main process, where `S2100KDataModule` removes it from the
    batch before the transfer to the device and adds it to
    `S2100KDataModule.skipped_tiles`: the model sees plain samples. When
    every sample of a batch is dropped the batch has zero rows: ``image`` of
    shape ``(0, *image_shape)`` and ``point`` of shape ``(0, 2)``.

    Args:
        image_shape: (bands, height, width) of the images, used only to shape
            an all-skipped batch.
        dtype: Pixel dtype of the images, likewise.
    """

    image_shape: tuple[int, int, int]
    dtype: torch.dtype = torch.float32

    def __call__(self, samples: list[Sample | None]) -> Sample:
        """Collate a list of samples.

        Args:
            samples: Samples from the dataset, ``None`` for skipped tiles.

        Returns:
            ``{'image': (B, C, H, W), 'point': (B, 2), 'skipped': ()}`` where B
            is the number of readable samples.
        """
        kept = [s for s in samples if s is not None]
        skipped = torch.tensor(len(samples) - len(kept), dtype=torch.int64)
        if kept:
            batch: Sample = default_collate(kept)
        else:
            batch = {
                'image': torch.empty((0, *self.image_shape), dtype=self.dtype),
                'point': torch.empty((0, 2), dtype=torch.float32),
            }
        batch[SKIPPED_KEY] = skipped
        return batch


class S2100KDataModule(NonGeoDataModule):
    """SatCLIP pretraining data: S2-100K or own imagery in the same layout.

    Data layout: ``<root>/index.csv`` (columns fn, lon, lat) and
    ``<root>/images/<fn>`` (see `SatCLIPImageryDataset`).

    Splits:

    * ``fit``: a random train/validation split of the whole data set
      (`train_val_indices`: the split `torch.utils.data.random_split` makes
      with a generator seeded with ``seed``), the same on every rank and every
      run, and the same as `CachedFeatureDataModule`'s. The reference also
      splits 90/10 at random with seed 0, but with its own generator calls, so
      the tiles in each part differ from the reference's. With
      ``val_split_pct=0`` there is no validation set (``val_dataloader``
      returns an empty list).
    * ``validate``: the validation part of the same split.
    * ``test`` and ``predict``: the whole data set (S2-100K has no test split;
      use them to embed every tile or location).

    Bad tiles. At setup (every stage) the header of every tile is read
    (`SatCLIPImageryDataset.check_tiles`: file present, readable, same band
    count, size and dtype; no pixels), and all bad rows are reported at once
    with a `TileCheckError`. With ``skip_unreadable`` they are reported as an
    `UnreadableTileWarning` instead and left out of every split: the split
    is made over all rows as above and the bad rows are then dropped from
    each part, so every good tile stays in the part it would be in if no tile
    were bad (and in the part `CachedFeatureDataModule` puts it in). The
    check costs about 0.2-0.3 ms per local tile (18-22 s for 100,000 tiles,
    measured by ``benchmarks/pretraining_throughput.py --tile-check``; on
    every rank under DDP) and more on network file systems;
    ``check_tiles=False`` skips it.

    Batches from the loaders (host memory) hold the tiles in their on-disk
    dtype (float32 with per-sample ``transforms``) and ``'skipped'``, the
    number of unreadable tiles dropped from the batch (with
    ``skip_unreadable``). `on_before_batch_transfer` removes that count and
    adds it to `skipped_tiles` (per split; `take_skipped_tiles` reads and
    resets it; `satclip_tg.tasks.SatCLIPTask` logs the training count each
    epoch as ``skipped_tiles``). After `on_after_batch_transfer` (on the
    device) a batch is a plain TorchGeo batch, which
    `torchgeo.datasets.utils.unbind_samples` splits into samples::

        {'image': float32 (B, C', crop_size, crop_size),  # scaled, B10 inserted
         'point': float32 (B, 2)}                          # (lon, lat) degrees

    with C' = 13 for S2-100K with ``insert_zero_b10``. Training batches are
    randomly cropped, flipped, blurred and have jittered points; the other
    splits are centre-cropped and otherwise untouched.

    Transforms. As in TorchGeo's data modules, ``transforms`` (a callable on
    one sample dict) and any further keyword arguments go to the data set,
    `SatCLIPImageryDataset`; the transforms run per sample in the loader
    workers, on the float32 raw pixel values, before the batched
    preprocessing above (so ``scale``, ``mean``/``std`` and the B10 band
    apply to their output). ``mean``/``std`` normalise per band on the
    device, after ``scale`` and before the B10 band is inserted.

    Memory. Host memory in flight per process is ``batch_size x bytes per
    sample x (num_workers x prefetch_factor + 1)``; for S2-100K a sample is
    12 x 256 x 256 uint16 = 1.57 MB. `setup` multiplies this by the processes
    of this node and fails with `HostMemoryError` before loading anything when
    it exceeds the available memory. On the device, the augmentation works
    ``augmentation_chunk_size`` images at a time, so its peak is the float32
    output batch plus one chunk's working copies.
    """

    def __init__(
        self,
        root: str = 'data',
        batch_size: int = 64,
        num_workers: int = 0,
        val_split_pct: float = 0.1,
        seed: int = 0,
        crop_size: int = 256,
        scale: float | None = 10000.0,
        insert_zero_b10: bool = True,
        flips: bool = True,
        blur: bool = True,
        coordinate_jitter: float = 0.01,
        skip_unreadable: bool = False,
        download: bool = False,
        checksum: bool = False,
        pin_memory: bool = False,
        prefetch_factor: int = 2,
        augmentation_chunk_size: int = 256,
        check_host_memory: bool = True,
        check_tiles: bool = True,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        transforms: Callable[[Sample], Sample] | None = None,
        **kwargs: Any,
    ) -> None:
        """Initialize a new S2100KDataModule instance.

        Args:
            root: Directory with ``index.csv`` and ``images/``.
            batch_size: Samples per batch (per device).
            num_workers: DataLoader worker processes (0: load in the main
                process).
            val_split_pct: Fraction of the data held out for validation, in
                [0, 1); 0 for no validation set.
            seed: Seed of the train/validation split.
            crop_size: Side in pixels of the square crops fed to the model
                (random in training, centred otherwise); at most the patch size.
                Use 224 for ViT-S/16 backbones.
            scale: Divide pixel values by this (10000 turns Sentinel-2 L2A
                digital numbers into reflectance); None to keep raw values.
            insert_zero_b10: Insert an all-zero band at index 10 to turn the 12
                bands of S2-100K into the 13 (SSL4EO-S12 order) that TorchGeo's
                Sentinel-2 weights expect. Needs 12-band images.
            flips: Random horizontal and vertical flips in training.
            blur: Random Gaussian blur (kernel 3, sigma U(0.1, 2)) in training.
            coordinate_jitter: Half-width in degrees of the symmetric uniform
                noise added to lon and lat of training points; 0 for none.
            skip_unreadable: Drop unreadable tiles from batches (counted in
                `skipped_tiles`) instead of failing.
            download: Download S2-100K (about 78 GB) into ``root`` if missing.
            checksum: Verify the SHA-256 of downloaded files.
            pin_memory: Use pinned memory in the DataLoaders (faster copies
                to a GPU).
            prefetch_factor: Batches each worker loads ahead (with
                ``num_workers > 0``).
            augmentation_chunk_size: Images the on-device augmentation
                processes at once; bounds its working memory.
            check_host_memory: Fail at setup when the loaders would hold more
                host memory than is available.
            check_tiles: Read every tile's header at setup and fail (or with
                ``skip_unreadable``, warn and leave them out) listing every
                missing, unreadable or odd tile at once. About 0.2-0.3 ms per
                local tile; switch off for very large data on slow file
                systems.
            mean: Per-band means subtracted on the device after ``scale``,
                one per band of the images as read (12 for S2-100K: the B10
                band is inserted afterwards and stays zero), in the units
                left after ``scale``; None for no normalisation.
            std: Per-band standard deviations divided by after subtracting
                ``mean``; given together with ``mean``.
            transforms: A callable applied to each sample dict in the loader
                workers (TorchGeo convention), on float32 raw pixel values,
                before the batched preprocessing; not supported by
                ``satclip-tg cache-features``.
            **kwargs: Further keyword arguments of `SatCLIPImageryDataset`
                (in a LightningCLI config: ``data.dict_kwargs``).

        Raises:
            ValueError: If an argument is out of range, or a keyword argument
                is not one of `SatCLIPImageryDataset`.
        """
        check_loader_arguments(
            batch_size, num_workers, val_split_pct, coordinate_jitter
        )
        if crop_size < 1:
            raise ValueError(f'crop_size must be at least 1, got {crop_size}')
        if prefetch_factor < 1:
            raise ValueError(
                f'prefetch_factor must be at least 1, got {prefetch_factor}'
            )
        if augmentation_chunk_size < 1:
            raise ValueError(
                f'augmentation_chunk_size must be at least 1, got '
                f'{augmentation_chunk_size}'
            )
        if scale is not None and not (math.isfinite(scale) and scale > 0):
            raise ValueError(f'scale must be a positive number or None, got {scale}')
        mean, std = check_normalisation(mean, std)
        _check_dataset_kwargs(kwargs)
        super().__init__(
            SatCLIPImageryDataset,
            batch_size,
            num_workers,
            root=root,
            download=download,
            checksum=checksum,
            skip_unreadable=skip_unreadable,
            transforms=transforms,
            **kwargs,
        )
        self.root = root
        self.val_split_pct = val_split_pct
        self.seed = seed
        self.crop_size = crop_size
        self.scale = scale
        self.insert_zero_b10 = insert_zero_b10
        self.flips = flips
        self.blur = blur
        self.coordinate_jitter = coordinate_jitter
        self.skip_unreadable = skip_unreadable
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor
        self.augmentation_chunk_size = augmentation_chunk_size
        self.check_host_memory = check_host_memory
        self.check_tiles = check_tiles
        #: The per-band normalisation as given (None: none).
        self.band_mean = mean
        self.band_std = std
        # TorchGeo's data modules describe their normalisation with the
        # per-band tensors ``mean`` and ``std``; here it follows ``scale``,
        # and 0 and 1 mean none.
        self.mean = torch.tensor(mean if mean is not None else 0.0)
        self.std = torch.tensor(std if std is not None else 1.0)
        self.transforms = transforms
        #: Unreadable tiles dropped from the batches of each split, counted as
        #: the batches reach the model (`take_skipped_tiles` resets a split).
        self.skipped_tiles: Counter[str] = Counter({split: 0 for split in SPLITS})

        self.train_aug = SatCLIPBatchAugmentation(
            crop_size=crop_size,
            train=True,
            scale=scale,
            insert_zero_b10=insert_zero_b10,
            flips=flips,
            blur=blur,
            coordinate_jitter=coordinate_jitter,
            chunk_size=augmentation_chunk_size,
            mean=mean,
            std=std,
        )
        evaluation = SatCLIPBatchAugmentation(
            crop_size=crop_size,
            train=False,
            scale=scale,
            insert_zero_b10=insert_zero_b10,
            chunk_size=augmentation_chunk_size,
            mean=mean,
            std=std,
        )
        self.aug = evaluation
        self.val_aug = evaluation
        self.test_aug = evaluation
        self.predict_aug = evaluation

    def check_images(self, dataset: SatCLIPImageryDataset) -> None:
        """Check the band count and patch size against the settings.

        Args:
            dataset: The data set.

        Raises:
            ValueError: If ``insert_zero_b10`` is set and the images do not have
                12 bands, if the patches are smaller than ``crop_size``, or if
                ``mean``/``std`` do not have one value per band.
        """
        bands, height, width = dataset.image_shape
        if self.band_mean is not None and len(self.band_mean) != bands:
            raise ValueError(
                f'mean and std have {len(self.band_mean)} values, but the images in '
                f'{self.root} have {bands} bands; give one value per band of the '
                f'images as read (before the B10 band is inserted: 12 for '
                f'S2-100K)'
            )
        if self.insert_zero_b10 and bands != S2_100K_BANDS:
            raise ValueError(
                f'insert_zero_b10=True expects Sentinel-2 L2A images with '
                f'{S2_100K_BANDS} bands (as in S2-100K), but the images in '
                f'{self.root} have {bands}; set insert_zero_b10 to false for other '
                f'imagery'
            )
        if height < self.crop_size or width < self.crop_size:
            raise ValueError(
                f'the images in {self.root} are {height}x{width} pixels, smaller '
                f'than crop_size={self.crop_size}; set crop_size to at most '
                f'{min(height, width)}'
            )

    def batches_in_flight(self) -> int:
        """Batches one process's loader holds in host memory at once.

        Returns:
            ``num_workers x prefetch_factor`` prefetched batches plus the one
            being handed to the model (1 without workers).
        """
        if self.num_workers == 0:
            return 1
        return self.num_workers * self.prefetch_factor + 1

    def host_bytes_in_flight(self, sample_bytes: int) -> int:
        """Host memory the loaders of this node hold at once, in bytes.

        Args:
            sample_bytes: Bytes of one sample (`SatCLIPImageryDataset.sample_bytes`).

        Returns:
            ``batch_size x sample_bytes x batches_in_flight()`` times the
            processes on this node (one per device under DDP).
        """
        per_process = self.batch_size * sample_bytes * self.batches_in_flight()
        return per_process * self._processes_on_node()

    def _processes_on_node(self) -> int:
        trainer = getattr(self, 'trainer', None)
        if trainer is None:
            return 1
        return max(int(getattr(trainer, 'num_devices', 1) or 1), 1)

    def _check_host_memory(self, dataset: SatCLIPImageryDataset) -> None:
        """Fail early when the loaders would not fit into host memory.

        Args:
            dataset: The data set.

        Raises:
            HostMemoryError: With the figures and the settings to lower.
        """
        if not self.check_host_memory:
            return
        available = available_memory_bytes()
        needed = self.host_bytes_in_flight(dataset.sample_bytes)
        if available is None or needed <= available:
            return
        per_batch = self.batch_size * dataset.sample_bytes
        raise HostMemoryError(
            f'the data loaders would hold {format_bytes(needed)} of host memory '
            f'(batch_size {self.batch_size} x {format_bytes(dataset.sample_bytes)} '
            f'per sample = {format_bytes(per_batch)} per batch, x '
            f'{self.batches_in_flight()} batches in flight (num_workers '
            f'{self.num_workers} x prefetch_factor {self.prefetch_factor} + 1) '
            f'per process, x {self._processes_on_node()} process(es) on this '
            f'node), but only {format_bytes(available)} is available. Lower '
            f'data.init_args.batch_size (per device), '
            f'num_workers or prefetch_factor; with a frozen backbone, train on '
            f'cached features instead (satclip-tg cache-features, then '
            f'--config configs/cached.yaml). Set check_host_memory: false to '
            f'skip this check.'
        )

    def bad_tiles(self, dataset: SatCLIPImageryDataset) -> set[int]:
        """Check every tile's header; fail, or warn and return the bad rows.

        Args:
            dataset: The data set.

        Returns:
            Rows to leave out (only with ``skip_unreadable``; else empty).

        Raises:
            TileCheckError: If a tile is bad and ``skip_unreadable`` is off,
                or if no tile is good.
        """
        if not self.check_tiles:
            return set()
        report = dataset.check_tiles()
        if report.ok:
            return set()
        if not self.skip_unreadable or len(report.bad_rows) == report.tiles:
            raise TileCheckError(
                f'{report.summary()}\nFix or remove these rows of index.csv, or '
                f'set data.init_args.skip_unreadable: true to leave them out '
                f'(data.init_args.check_tiles: false skips this check)',
                report,
            )
        warnings.warn(
            f'{report.summary()}\nskip_unreadable is set: these '
            f'{len(report.bad_rows)} tile(s) are left out of every split',
            UnreadableTileWarning,
            stacklevel=3,
        )
        return set(report.bad_rows)

    def setup(self, stage: str) -> None:
        """Create the data set and, for fit/validate, the train/val split.

        Args:
            stage: Either 'fit', 'validate', 'test', or 'predict'.

        Raises:
            TileCheckError: If tiles are missing, unreadable or of another
                band count, size or dtype (without ``skip_unreadable``).
            ValueError: If the images do not suit ``insert_zero_b10`` or
                ``crop_size``, or if the split leaves a part empty.
            HostMemoryError: If the loaders would not fit into host memory.
        """
        dataset = SatCLIPImageryDataset(**self.kwargs)
        bad = self.bad_tiles(dataset)
        self.check_images(dataset)
        self._check_host_memory(dataset)
        # Per-sample transforms turn the images into float32 (see the data set).
        dtype = dataset.dtype if self.transforms is None else torch.float32
        self.collate_fn = SkipUnreadableCollate(dataset.image_shape, dtype)
        if stage in ('fit', 'validate'):
            train, val = train_val_indices(len(dataset), self.val_split_pct, self.seed)
            # Dropping the bad rows after the split (not splitting the good
            # ones) keeps every good tile in the part it is in without them.
            train = [i for i in train if i not in bad]
            val = [i for i in val if i not in bad]
            for part, rows in (('training', train), ('validation', val)):
                if not rows and (part == 'training' or self.val_split_pct > 0):
                    raise ValueError(
                        f'every tile of the {part} split of {self.root} is bad '
                        f'(left out with skip_unreadable); fix the tiles or '
                        f'change val_split_pct or seed'
                    )
            self.train_dataset = Subset(dataset, train)
            self.val_dataset = Subset(dataset, val) if val else None
        else:
            every: Dataset[Sample] = dataset
            if bad:
                every = Subset(
                    dataset, [i for i in range(len(dataset)) if i not in bad]
                )
            self.test_dataset = every
            self.predict_dataset = every

    def _dataloader_factory(self, split: str) -> DataLoader[Sample]:
        """Create the DataLoader of one split.

        Training loaders shuffle, drop the last incomplete batch when the split
        holds more than one batch (contrastive batches should be full), and keep
        their workers alive between epochs.

        Args:
            split: Either 'train', 'val', 'test', or 'predict'.

        Returns:
            The DataLoader.

        Raises:
            MisconfigurationException: If `setup` did not create the
                data set of the split, or if it is empty.
        """
        dataset: Dataset[Sample] = self._valid_attribute(f'{split}_dataset')
        batch_size: int = self._valid_attribute(f'{split}_batch_size', 'batch_size')
        train = split == 'train'
        size = len(dataset) if isinstance(dataset, Sized) else 0
        return DataLoader(
            dataset=dataset,
            batch_size=batch_size,
            shuffle=train,
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            drop_last=train and size > batch_size,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
            prefetch_factor=self.prefetch_factor if self.num_workers > 0 else None,
        )

    def val_dataloader(self) -> DataLoader[Sample]:
        """Return the validation DataLoader.

        Returns:
            The DataLoader, or an empty list when ``val_split_pct`` is 0 (which
            Lightning treats as no validation).

        Raises:
            MisconfigurationException: If `setup` did not run.
        """
        if self.val_split_pct == 0:
            return []  # type: ignore[return-value]
        return self._dataloader_factory('val')

    def _current_split(self) -> str | None:
        """The split the trainer is running, as TorchGeo's hooks tell it.

        Returns:
            ``'train'``, ``'val'``, ``'test'`` or ``'predict'``; None without
            a trainer or outside a loop.
        """
        trainer = self.trainer
        if trainer is None:
            return None
        if trainer.training:
            return 'train'
        if trainer.validating or trainer.sanity_checking:
            return 'val'
        if trainer.testing:
            return 'test'
        if trainer.predicting:
            return 'predict'
        return None

    def _remove_skipped(self, batch: Sample) -> Sample:
        """Move the count of dropped tiles out of a batch into `skipped_tiles`.

        Args:
            batch: A batch, possibly with `SKIPPED_KEY`.

        Returns:
            The batch without it (the same dict).
        """
        skipped = batch.pop(SKIPPED_KEY, None)
        if skipped is not None:
            # Read on the host when possible: a device tensor would cost a
            # synchronisation per batch.
            split = self._current_split() or 'unknown'
            self.skipped_tiles[split] += int(skipped.sum())
        return batch

    def on_before_batch_transfer(self, batch: Sample, dataloader_idx: int) -> Sample:
        """Take the count of unreadable tiles out of a batch, on the host.

        Args:
            batch: A batch from a loader of this data module.
            dataloader_idx: Index of the loader.

        Returns:
            The batch without ``'skipped'``: ``{'image', 'point'}``.
        """
        return self._remove_skipped(batch)

    def on_after_batch_transfer(self, batch: Sample, dataloader_idx: int) -> Sample:
        """Preprocess and augment a batch on the device (TorchGeo's hook).

        Also removes a ``'skipped'`` count left in the batch (when the hook
        is called directly, without `on_before_batch_transfer`), so the model
        always sees plain samples.

        Args:
            batch: A batch on the device.
            dataloader_idx: Index of the loader.

        Returns:
            ``{'image', 'point'}``, preprocessed for the current split.
        """
        batch = self._remove_skipped(batch)
        out: Sample = super().on_after_batch_transfer(batch, dataloader_idx)
        return out

    def take_skipped_tiles(self, split: str = 'train') -> int:
        """Return the unreadable tiles dropped from a split's batches, and reset.

        Counted as the batches reach the model, in this process (each
        process of a distributed run counts its own batches).

        Args:
            split: ``'train'``, ``'val'``, ``'test'`` or ``'predict'``.

        Returns:
            The count since the last call for this split (or since creation).

        Raises:
            ValueError: If ``split`` is not one of the four.
        """
        if split not in SPLITS:
            raise ValueError(f'split must be one of {list(SPLITS)}, got {split!r}')
        count = self.skipped_tiles[split]
        self.skipped_tiles[split] = 0
        return count

    def plot(self, *args: Any, **kwargs: Any) -> Figure | None:
        """Plot a sample with the data set's `SatCLIPImageryDataset.plot`.

        Works after `setup` of any stage (TorchGeo's looks only at the
        validation set).

        Args:
            *args: Arguments of `SatCLIPImageryDataset.plot` (the sample).
            **kwargs: Its keyword arguments (``show_titles``, ``suptitle``,
                ``rgb_bands``).

        Returns:
            The figure, or None before `setup`.
        """
        for name in ('val_dataset', 'train_dataset', 'test_dataset', 'predict_dataset'):
            dataset = getattr(self, name, None)
            while isinstance(dataset, Subset):
                dataset = dataset.dataset
            if isinstance(dataset, SatCLIPImageryDataset):
                return dataset.plot(*args, **kwargs)
        return None
