"""LightningDataModule for SatCLIP pretraining on S2-100K or own imagery.

Tiles are read raw on the CPU workers; all preprocessing and augmentation runs
batched on the accelerator, in TorchGeo's
`on_after_batch_transfer`, through
the per-split ``train_aug`` / ``val_aug`` / ``test_aug`` / ``predict_aug``
callables (`SatCLIPBatchAugmentation`).
"""

import math
from collections.abc import Sized
from dataclasses import dataclass

import kornia.augmentation as K
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, default_collate, random_split
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets.utils import Sample

from ..datasets.s2_100k import SatCLIPImageryDataset

__all__ = ['S2100KDataModule', 'SatCLIPBatchAugmentation', 'SkipUnreadableCollate']

#: Index at which the (all-zero) Sentinel-2 B10 band is inserted: S2-100K has
#: B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 | B11 B12, SSL4EO-S12 weights expect
#: B01 ... B09 B10 B11 B12.
B10_INDEX = 10

#: Band count of S2-100K (Sentinel-2 L2A, no B10).
S2_100K_BANDS = 12


@dataclass(frozen=True)
class SkipUnreadableCollate:
    """Collate samples, dropping the ``None`` of skipped (unreadable) tiles.

    The batch gets an extra entry ``'skipped'``: a 0-d int64 tensor with the
    number of dropped samples, so that a model can count skipped tiles over an
    epoch (DataLoader workers cannot share a counter). When every sample of a
    batch is dropped the batch has zero rows: ``image`` of shape
    ``(0, *image_shape)`` and ``point`` of shape ``(0, 2)``.

    Args:
        image_shape: (bands, height, width) of the images, used only to shape
            an all-skipped batch.
    """

    image_shape: tuple[int, int, int]

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
                'image': torch.empty((0, *self.image_shape), dtype=torch.float32),
                'point': torch.empty((0, 2), dtype=torch.float32),
            }
        batch['skipped'] = skipped
        return batch


class SatCLIPBatchAugmentation(nn.Module):
    """Batched preprocessing and augmentation of SatCLIP batches.

    In this order: divide the image by ``scale``; insert an all-zero band at
    index 10 (Sentinel-2 B10, to go from the 12 bands of S2-100K to the 13 of
    SSL4EO-S12 backbones); crop to ``crop_size`` (random in training, centred
    otherwise); in training also random horizontal and vertical flips, a
    Gaussian blur (kernel 3, sigma drawn per image from U(0.1, 2.0) and always
    applied, as torchvision's ``GaussianBlur(3)`` of the reference) and a
    coordinate jitter.

    The coordinate jitter adds U(-j, j) degrees independently to longitude and
    latitude (the reference adds U(0, j), which shifts every point north-east
    on average); longitudes that leave [-180, 180] are wrapped around the
    dateline and latitudes are clamped to [-90, 90].

    Keys other than ``image`` and ``point`` (e.g. ``skipped``) pass through.
    """

    def __init__(
        self,
        *,
        crop_size: int,
        train: bool,
        scale: float | None = 10000.0,
        insert_zero_b10: bool = True,
        flips: bool = True,
        blur: bool = True,
        coordinate_jitter: float = 0.01,
    ) -> None:
        """Initialize a new SatCLIPBatchAugmentation instance.

        Args:
            crop_size: Side of the square output images in pixels.
            train: If True, use the random training augmentations; if False,
                only the deterministic preprocessing and a centre crop.
            scale: Divide the pixel values by this; None to leave them as is.
            insert_zero_b10: Insert an all-zero band at index 10.
            flips: Random horizontal and vertical flips (training only).
            blur: Random Gaussian blur, kernel 3 (training only).
            coordinate_jitter: Half-width in degrees of the uniform noise added
                to lon and lat (training only); 0 switches it off.
        """
        super().__init__()
        self.crop_size = crop_size
        self.train_mode = train
        self.scale = scale
        self.insert_zero_b10 = insert_zero_b10
        self.coordinate_jitter = coordinate_jitter if train else 0.0
        self.random: K.AugmentationSequential | None = None
        if train:
            ops: list[K.AugmentationBase2D] = [K.RandomCrop((crop_size, crop_size))]
            if flips:
                ops += [K.RandomHorizontalFlip(p=0.5), K.RandomVerticalFlip(p=0.5)]
            if blur:
                ops.append(K.RandomGaussianBlur((3, 3), (0.1, 2.0), p=1.0))
            self.random = K.AugmentationSequential(*ops, data_keys=['image'])

    def forward(self, batch: Sample) -> Sample:
        """Preprocess and augment one batch.

        Args:
            batch: ``{'image': (B, C, H, W), 'point': (B, 2), ...}``.

        Returns:
            A new dict: ``image`` (B, C', crop_size, crop_size) float, with
            C' = C + 1 if the B10 band is inserted; ``point`` (B, 2) (lon, lat)
            in degrees; other keys unchanged.

        Raises:
            ValueError: If the images are smaller than ``crop_size``, or have
                fewer than 10 bands while ``insert_zero_b10`` is set.
        """
        out = dict(batch)
        image = batch['image'].float()
        height, width = image.shape[-2:]
        if height < self.crop_size or width < self.crop_size:
            raise ValueError(
                f'images are {height}x{width} pixels, smaller than '
                f'crop_size={self.crop_size}; lower crop_size'
            )
        if self.scale is not None:
            image = image / self.scale
        if self.insert_zero_b10:
            if image.shape[1] < B10_INDEX:
                raise ValueError(
                    f'insert_zero_b10 needs Sentinel-2 images with 12 bands, got '
                    f'{image.shape[1]}'
                )
            zeros = image.new_zeros((image.shape[0], 1, height, width))
            image = torch.cat(
                [image[:, :B10_INDEX], zeros, image[:, B10_INDEX:]], dim=1
            )
        if self.random is not None:
            if image.shape[0] > 0:
                image = self.random(image)
            else:
                image = image[..., : self.crop_size, : self.crop_size]
        else:
            top = (height - self.crop_size) // 2
            left = (width - self.crop_size) // 2
            image = image[..., top : top + self.crop_size, left : left + self.crop_size]
        out['image'] = image
        if 'point' in batch:
            out['point'] = self.jitter(batch['point'])
        return out

    def jitter(self, point: Tensor) -> Tensor:
        """Add symmetric uniform noise to (lon, lat), keeping them valid.

        Args:
            point: (B, 2) (lon, lat) in degrees.

        Returns:
            The jittered points (the input itself when the jitter is 0):
            longitude wrapped into [-180, 180], latitude clamped to [-90, 90].
        """
        if self.coordinate_jitter <= 0:
            return point
        noise = (torch.rand_like(point) * 2 - 1) * self.coordinate_jitter
        moved = point + noise
        lon, lat = moved[:, 0], moved[:, 1]
        lon = torch.where(lon > 180, lon - 360, lon)
        lon = torch.where(lon < -180, lon + 360, lon)
        lat = lat.clamp(-90.0, 90.0)
        return torch.stack([lon, lat], dim=1)

    def extra_repr(self) -> str:
        """Return the settings for ``repr``.

        Returns:
            A one-line summary.
        """
        return (
            f'crop_size={self.crop_size}, train={self.train_mode}, '
            f'scale={self.scale}, insert_zero_b10={self.insert_zero_b10}, '
            f'coordinate_jitter={self.coordinate_jitter}'
        )


class S2100KDataModule(NonGeoDataModule):
    """SatCLIP pretraining data: S2-100K or own imagery in the same layout.

    Data layout: ``<root>/index.csv`` (columns fn, lon, lat) and
    ``<root>/images/<fn>`` (see `SatCLIPImageryDataset`).

    Splits:

    * ``fit``: a random train/validation split of the whole data set with
      `torch.utils.data.random_split` and a generator seeded with
      ``seed`` (the reference uses 90/10 with seed 0): the same on every rank
      and every run. With ``val_split_pct=0`` there is no validation set
      (``val_dataloader`` returns an empty list).
    * ``validate``: the validation part of the same split.
    * ``test`` and ``predict``: the whole data set (S2-100K has no test split;
      use them to embed every tile or location).

    Batches after `on_after_batch_transfer` (on the device)::

        {'image': float32 (B, C', crop_size, crop_size),  # scaled, B10 inserted
         'point': float32 (B, 2),                          # (lon, lat) degrees
         'skipped': int64 ()}                              # unreadable tiles dropped

    with C' = 13 for S2-100K with ``insert_zero_b10``. Training batches are
    randomly cropped, flipped, blurred and have jittered points; the other
    splits are centre-cropped and otherwise untouched.
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
                ``batch['skipped']``) instead of failing.
            download: Download S2-100K (about 78 GB) into ``root`` if missing.
            checksum: Verify the SHA-256 of downloaded files.
            pin_memory: Use pinned memory in the DataLoaders (faster copies
                to a GPU).

        Raises:
            ValueError: If an argument is out of range.
        """
        if not 0 <= val_split_pct < 1:
            raise ValueError(f'val_split_pct must be in [0, 1), got {val_split_pct}')
        if batch_size < 1:
            raise ValueError(f'batch_size must be at least 1, got {batch_size}')
        if num_workers < 0:
            raise ValueError(f'num_workers must be >= 0, got {num_workers}')
        if crop_size < 1:
            raise ValueError(f'crop_size must be at least 1, got {crop_size}')
        if scale is not None and not (math.isfinite(scale) and scale > 0):
            raise ValueError(f'scale must be a positive number or None, got {scale}')
        if not (math.isfinite(coordinate_jitter) and coordinate_jitter >= 0):
            raise ValueError(
                f'coordinate_jitter must be a finite number >= 0 (degrees), got '
                f'{coordinate_jitter}'
            )
        super().__init__(
            SatCLIPImageryDataset,
            batch_size,
            num_workers,
            root=root,
            download=download,
            checksum=checksum,
            skip_unreadable=skip_unreadable,
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

        self.train_aug = SatCLIPBatchAugmentation(
            crop_size=crop_size,
            train=True,
            scale=scale,
            insert_zero_b10=insert_zero_b10,
            flips=flips,
            blur=blur,
            coordinate_jitter=coordinate_jitter,
        )
        evaluation = SatCLIPBatchAugmentation(
            crop_size=crop_size,
            train=False,
            scale=scale,
            insert_zero_b10=insert_zero_b10,
        )
        self.aug = evaluation
        self.val_aug = evaluation
        self.test_aug = evaluation
        self.predict_aug = evaluation

    def _check_images(self, dataset: SatCLIPImageryDataset) -> None:
        """Check the band count and patch size against the settings.

        Args:
            dataset: The data set.

        Raises:
            ValueError: If ``insert_zero_b10`` is set and the images do not have
                12 bands, or if the patches are smaller than ``crop_size``.
        """
        bands, height, width = dataset.image_shape
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

    def setup(self, stage: str) -> None:
        """Create the data set and, for fit/validate, the train/val split.

        Args:
            stage: Either 'fit', 'validate', 'test', or 'predict'.

        Raises:
            ValueError: If the images do not suit ``insert_zero_b10`` or
                ``crop_size``, or if the split leaves a part empty.
        """
        dataset = SatCLIPImageryDataset(**self.kwargs)
        self._check_images(dataset)
        self.collate_fn = SkipUnreadableCollate(dataset.image_shape)
        if stage in ('fit', 'validate'):
            n_val = int(len(dataset) * self.val_split_pct)
            if self.val_split_pct > 0 and n_val == 0:
                raise ValueError(
                    f'val_split_pct={self.val_split_pct} of {len(dataset)} samples '
                    f'leaves no validation sample; raise it or set it to 0'
                )
            generator = torch.Generator().manual_seed(self.seed)
            train, val = random_split(
                dataset, [len(dataset) - n_val, n_val], generator=generator
            )
            self.train_dataset = train
            self.val_dataset = val if n_val > 0 else None
        else:
            self.test_dataset = dataset
            self.predict_dataset = dataset

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
