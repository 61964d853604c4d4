"""Write a feature cache: a frozen backbone over every tile, for V views.

`cache_features` runs `FeatureCacheWriter` (a LightningModule) under
``Trainer.predict``: on GPUs with bf16 autocast on the backbone, and under
DDP over several GPUs or nodes with each rank computing and writing its own
shards. A shard is written atomically as soon as it is done; a rerun skips
the finished shards, so a killed run resumes where it stopped. Each tile is
decoded once and rendered into all of its views on the accelerator.
"""

import datetime
import glob
import os
import pathlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ..atomic import atomic_output, check_writable
from ..datasets.s2_100k import SatCLIPImageryDataset
from ..image.backbones import (
    backbone_digest,
    backbone_feature_dim,
    backbone_features,
    backbone_projection,
)
from ..renamed_arguments import task_hparam
from ..resources import (
    HostMemoryError,
    available_memory_bytes,
    format_bytes,
    free_disk_bytes,
)
from ..transforms.augmentation import SatCLIPBatchAugmentation, seeded_views
from .manifest import (
    FEATURE_DTYPES,
    MANIFEST_NAME,
    POINTS_NAME,
    FeatureCacheError,
    FeatureCacheManifest,
    file_sha256,
    finished_shards,
    shard_name,
)

__all__ = [
    'CacheReport',
    'FeatureCacheWriter',
    'LiveTileSource',
    'build_manifest',
    'cache_features',
]


@runtime_checkable
class LiveTileSource(Protocol):
    """What the writer reads from a live data module (`S2100KDataModule`)."""

    root: str
    crop_size: int
    scale: float | None
    band_mean: tuple[float, ...] | None
    band_std: tuple[float, ...] | None
    insert_zero_b10: bool
    flips: bool
    blur: bool
    seed: int
    num_workers: int
    prefetch_factor: int
    augmentation_chunk_size: int
    kwargs: dict[str, Any]

    def check_images(self, dataset: SatCLIPImageryDataset) -> None:
        """Check a data set's band count and patch size against the settings."""

    def bad_tiles(self, dataset: SatCLIPImageryDataset) -> set[int]:
        """Check every tile's header; fail, or warn and return the bad rows."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version('satclip-tg')
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return '0.0.0'


class _ShardDataset(Dataset[dict[str, Tensor]]):
    """One item per shard: its tiles, decoded, in their on-disk dtype."""

    def __init__(
        self,
        tiles: SatCLIPImageryDataset,
        manifest: FeatureCacheManifest,
        shards: list[int],
    ) -> None:
        self.tiles = tiles
        self.manifest = manifest
        self.shards = shards

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, item: int) -> dict[str, Tensor]:
        shard = self.shards[item]
        indices = self.manifest.shard_tiles(shard)
        images = torch.zeros(
            (len(indices), *self.tiles.image_shape), dtype=self.tiles.dtype
        )
        valid = torch.ones(len(indices), dtype=torch.bool)
        for row, index in enumerate(indices):
            sample = self.tiles[index]
            if sample is None:  # unreadable, skipped (skip_unreadable)
                valid[row] = False
            else:
                images[row] = sample['image']
        return {
            'shard': torch.tensor(shard),
            'tiles': torch.tensor(list(indices), dtype=torch.int64),
            'image': images,
            'valid': valid,
        }


class FeatureCacheWriter(pl.LightningModule):
    """Computes and writes the shards of a feature cache under ``Trainer.predict``.

    Each predict item is one shard: its tiles in their on-disk dtype. On the
    accelerator every tile is rendered into its V views (`seeded_views`, the
    data module's preprocessing), the frozen backbone's pooled features are
    computed ``batch_size`` images at a time, and the shard is written
    atomically when it is done. Under DDP shard ``k`` belongs to rank
    ``k mod world_size``; each rank computes and writes its unfinished ones.
    """

    def __init__(
        self,
        image_encoder: nn.Module,
        tiles: SatCLIPImageryDataset,
        augmentation: SatCLIPBatchAugmentation,
        manifest: FeatureCacheManifest,
        output: str | os.PathLike[str],
        *,
        batch_size: int = 256,
        num_workers: int = 0,
        prefetch_factor: int = 2,
    ) -> None:
        """Initialize the writer.

        Args:
            image_encoder: The frozen image backbone (its projection is not
                applied).
            tiles: The data set of tiles.
            augmentation: Preprocessing with the data module's settings; its
                `render` turns tiles and view parameters into model input.
            manifest: The cache's manifest (already checked).
            output: The cache folder.
            batch_size: Images per backbone forward pass.
            num_workers: DataLoader workers decoding shards.
            prefetch_factor: Shards each worker decodes ahead.
        """
        super().__init__()
        self.image_encoder = image_encoder.eval()
        self.tiles = tiles
        self.augmentation = augmentation
        self.manifest = manifest
        self.output = pathlib.Path(output)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.started = time.time()

    def predict_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        """The unfinished shards of this rank.

        Returns:
            A loader of whole shards (no batching).
        """
        # Shard k belongs to rank k mod world size whatever is finished, so
        # ranks that list the finished shards at different moments (another
        # rank may just have written one) still never skip or share a shard.
        done = set(finished_shards(self.output, self.manifest))
        world, rank = self.trainer.world_size, self.global_rank
        mine = [
            shard
            for shard in range(rank, self.manifest.shards, world)
            if shard not in done
        ]
        return DataLoader(
            _ShardDataset(self.tiles, self.manifest, mine),
            batch_size=None,
            num_workers=self.num_workers,
            prefetch_factor=self.prefetch_factor if self.num_workers else None,
        )

    def on_predict_start(self) -> None:
        """Remove temporary files that killed earlier runs left behind."""
        if not self.trainer.is_global_zero:
            return
        for name in glob.glob(str(self.output / '.features-*.partial.npy')):
            # Only files older than this run: other ranks may be writing now.
            if os.path.getmtime(name) < self.started:
                pathlib.Path(name).unlink(missing_ok=True)

    @torch.no_grad()
    def shard_features(self, images: Tensor, tiles: Tensor) -> Tensor:
        """Features of every view of some tiles.

        Args:
            images: ``(n, C, H, W)`` tiles in their on-disk dtype.
            tiles: ``(n,)`` their indices.

        Returns:
            ``(n, V, D)`` float32 features.
        """
        manifest = self.manifest
        _, _, height, width = images.shape
        out = torch.empty(
            (len(images), manifest.views, manifest.feature_dim),
            dtype=torch.float32,
            device=images.device,
        )
        for view in range(manifest.views):
            views = seeded_views(
                manifest.view_seed,
                tiles,
                view,
                height,
                width,
                self.augmentation.crop_size,
                flips=bool(manifest.data['flips']),
                blur=bool(manifest.data['blur']),
            )
            for start in range(0, len(images), self.batch_size):
                rows = slice(start, start + self.batch_size)
                model_input = self.augmentation.render(images[rows], views[rows])
                features = backbone_features(self.image_encoder, model_input)
                out[rows, view] = features.float()
        return out

    def predict_step(self, batch: dict[str, Tensor]) -> Tensor:
        """Compute one shard's features.

        Args:
            batch: One shard (see `_ShardDataset`).

        Returns:
            ``(n, V, D)`` float32 features; NaN for unreadable tiles.
        """
        features = self.shard_features(batch['image'], batch['tiles'])
        features[~batch['valid']] = float('nan')
        return features

    def on_predict_batch_end(
        self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Write the shard atomically.

        Args:
            outputs: The shard's features.
            batch: The shard.
            batch_idx: Its position in this rank's list.
            dataloader_idx: Index of the dataloader.

        Raises:
            FeatureCacheError: If features of a readable tile are not finite in
                the storage dtype.
        """
        shard = int(batch['shard'])
        valid = batch['valid'].cpu().numpy()
        with np.errstate(over='ignore'):  # overflow is reported below
            features = outputs.cpu().numpy().astype(self.manifest.dtype)
        if not np.isfinite(features[valid]).all():
            hint = (
                ' (float16 overflows above 65504: pass --dtype float32)'
                if self.manifest.dtype == 'float16'
                else ''
            )
            raise FeatureCacheError(
                f'the backbone gave non-finite features for tiles in shard {shard} '
                f'(tiles {self.manifest.shard_tiles(shard).start}-'
                f'{self.manifest.shard_tiles(shard).stop - 1}){hint}'
            )
        with atomic_output(self.output / shard_name(shard), overwrite=True) as path:
            np.save(path, features)

    def forward(self, images: Tensor) -> Tensor:
        """Pooled backbone features of model input.

        Args:
            images: ``(B, C, H, W)`` model input.

        Returns:
            ``(B, D)`` features.
        """
        return backbone_features(self.image_encoder, images)


@dataclass
class CacheReport:
    """What `cache_features` did.

    Attributes:
        manifest: The cache's manifest.
        output: The cache folder.
        shards_before: Shards already finished when the run started.
        seconds: Wall time of the run.
    """

    manifest: FeatureCacheManifest
    output: pathlib.Path
    shards_before: int
    seconds: float


def _hparams(task: pl.LightningModule) -> dict[str, Any]:
    return dict(task.hparams)


def _check_task(task: pl.LightningModule) -> nn.Module:
    """The frozen image backbone of a SatCLIP task, or a clear refusal."""
    hparams = _hparams(task)
    image_encoder = getattr(task, 'image_encoder', None)
    backbone = task_hparam(hparams, 'model')
    if not isinstance(image_encoder, nn.Module) or backbone is None:
        raise FeatureCacheError(
            f'cache-features needs a SatCLIP pretraining task (model.class_path '
            f'satclip_tg.tasks.SatCLIPPretraining); the config gives '
            f'{type(task).__name__}'
        )
    if not hparams.get('freeze_backbone', False):
        raise FeatureCacheError(
            f'the backbone {backbone!r} is not frozen '
            f'(model.init_args.freeze_backbone: false), so its features change '
            f'while it trains and cannot be cached; set freeze_backbone: true, or '
            f'train on images without a cache'
        )
    try:
        projection = backbone_projection(image_encoder)
        backbone_feature_dim(image_encoder)
    except TypeError as error:
        raise FeatureCacheError(str(error)) from None
    in_projection = {id(p) for p in projection.parameters()}
    outside = [
        name
        for name, parameter in image_encoder.named_parameters()
        if parameter.requires_grad and id(parameter) not in in_projection
    ]
    if outside:
        raise FeatureCacheError(
            f'the backbone {backbone!r} trains parameters outside its '
            f'projection ({", ".join(outside[:3])}), so its features cannot be '
            f'cached'
        )
    return image_encoder


def _check_bands(
    task: pl.LightningModule, datamodule: LiveTileSource, tiles: SatCLIPImageryDataset
) -> None:
    """The bands the data module produces must be those the backbone takes."""
    produced = tiles.bands + (1 if datamodule.insert_zero_b10 else 0)
    expected = int(_hparams(task).get('in_channels', produced))
    if produced != expected:
        raise FeatureCacheError(
            f'the data module produces {produced}-band images ({tiles.bands} bands '
            f'in {datamodule.root}'
            + (' plus the inserted B10' if datamodule.insert_zero_b10 else '')
            + f'), but the backbone takes {expected} (model.init_args.in_channels); '
            f'make them agree'
        )


def build_manifest(
    task: pl.LightningModule,
    datamodule: LiveTileSource,
    tiles: SatCLIPImageryDataset,
    *,
    views: int,
    dtype: str,
    shard_size: int,
    seed: int,
) -> FeatureCacheManifest:
    """The manifest of the cache a task and data module would produce.

    Args:
        task: The pretraining task (its backbone).
        datamodule: The live data module (its preprocessing settings).
        tiles: Its data set.
        views: Views per tile.
        dtype: Storage dtype.
        shard_size: Tiles per shard.
        seed: Seed of the training views.

    Returns:
        The manifest.
    """
    hparams = _hparams(task)
    image_encoder = _check_task(task)
    bands, height, width = tiles.image_shape
    return FeatureCacheManifest(
        backbone=task_hparam(hparams, 'model'),
        backbone_weights=task_hparam(hparams, 'weights'),
        backbone_args=dict(task_hparam(hparams, 'model_args') or {}),
        in_channels=int(hparams['in_channels']),
        backbone_sha256=backbone_digest(image_encoder),
        feature_dim=backbone_feature_dim(image_encoder),
        views=views,
        view_seed=seed,
        dtype=dtype,
        tiles=len(tiles),
        shard_size=shard_size,
        index_sha256=file_sha256(tiles.root / 'index.csv'),
        data={
            'root': str(datamodule.root),
            'crop_size': datamodule.crop_size,
            'scale': datamodule.scale,
            'insert_zero_b10': datamodule.insert_zero_b10,
            'flips': datamodule.flips,
            'blur': datamodule.blur,
            'blur_sigma': [0.1, 2.0],
            'image_shape': [bands, height, width],
            'image_dtype': str(tiles.dtype).removeprefix('torch.'),
            # Only when set, so that caches made before normalisation existed
            # keep their manifest (and can be resumed).
            **(
                {}
                if datamodule.band_mean is None
                else {
                    'mean': list(datamodule.band_mean),
                    'std': list(datamodule.band_std or ()),
                }
            ),
        },
        satclip_tg_version=_version(),
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds'),
    )


def _cache_files(directory: pathlib.Path) -> Iterator[pathlib.Path]:
    yield directory / MANIFEST_NAME
    yield directory / POINTS_NAME
    yield from directory.glob('features-*.npy')
    yield from directory.glob('.features-*.partial.npy')


def _prepare_output(
    output: pathlib.Path, manifest: FeatureCacheManifest, overwrite: bool
) -> None:
    """Refuse a folder with another cache or other files; clear it on overwrite."""
    if output.exists() and not output.is_dir():
        raise FeatureCacheError(f'--output {output} exists and is not a folder')
    try:
        check_writable(output, folder=True)
    except ValueError as error:
        raise FeatureCacheError(str(error)) from None
    existing_path = output / MANIFEST_NAME
    if existing_path.is_file():
        existing = FeatureCacheManifest.read(output)
        differences = existing.differences(manifest)
        if not differences:
            return  # resume
        if not overwrite:
            raise FeatureCacheError(
                f'{output} holds a feature cache made with other settings, so it '
                f'cannot be resumed: '
                + '; '.join(differences[:6])
                + '. Pass --overwrite to replace it, or choose another --output'
            )
        for path in list(_cache_files(output)):
            path.unlink(missing_ok=True)
        return
    # Temporary files of a rank writing now (another node) do not count.
    if output.is_dir() and any(
        '.partial' not in path.name for path in output.iterdir()
    ):
        raise FeatureCacheError(
            f'--output {output} is a folder with other files and no {MANIFEST_NAME}; '
            f'choose an empty or new folder'
        )


def _check_resources(
    output: pathlib.Path,
    manifest: FeatureCacheManifest,
    tiles: SatCLIPImageryDataset,
    num_workers: int,
    prefetch_factor: int,
    processes: int,
) -> None:
    done = finished_shards(output, manifest) if output.is_dir() else []
    done_bytes = sum(
        int(np.prod(manifest.shard_shape(s))) * np.dtype(manifest.dtype).itemsize
        for s in done
    )
    needed_disk = manifest.feature_bytes - done_bytes + manifest.tiles * 16
    free = free_disk_bytes(output)
    if needed_disk > free:
        raise FeatureCacheError(
            f'the cache needs {format_bytes(needed_disk)} more on disk '
            f'({manifest.tiles} tiles x {manifest.views} views x '
            f'{manifest.feature_dim} features x '
            f'{np.dtype(manifest.dtype).itemsize} bytes), but {output} has only '
            f'{format_bytes(free)} free; free space, choose another --output, or '
            f'use fewer --views'
        )
    in_flight = (num_workers * prefetch_factor + 1) if num_workers else 1
    needed_memory = manifest.shard_size * tiles.sample_bytes * in_flight * processes
    available = available_memory_bytes()
    if available is not None and needed_memory > available:
        raise HostMemoryError(
            f'decoding shards would hold {format_bytes(needed_memory)} of host '
            f'memory ({manifest.shard_size} tiles per shard x '
            f'{format_bytes(tiles.sample_bytes)} x {in_flight} shards in flight x '
            f'{processes} process(es)), but only {format_bytes(available)} is '
            f'available; lower --shard-size or --num-workers'
        )


def cache_features(
    task: pl.LightningModule,
    datamodule: LiveTileSource,
    output: str | os.PathLike[str],
    *,
    views: int,
    dtype: str = 'float16',
    shard_size: int = 256,
    batch_size: int = 256,
    seed: int | None = None,
    num_workers: int | None = None,
    overwrite: bool = False,
    trainer_kwargs: dict[str, Any] | None = None,
    say: Callable[[str], None] = print,
) -> CacheReport:
    """Cache a frozen backbone's features of every tile, for ``views`` views.

    Args:
        task: The pretraining task of the training config (its frozen backbone
            and the backbone settings).
        datamodule: The config's live data module (data set and preprocessing).
        output: The cache folder; created if needed. A folder holding a cache
            with the same settings is resumed.
        views: Views per tile (>= 1): view 0 the evaluation view, views
            1 .. V-1 training views.
        dtype: ``'float16'`` (default) or ``'float32'``.
        shard_size: Tiles per shard file.
        batch_size: Images per backbone forward pass.
        seed: Seed of the training views; default: the data module's seed.
        num_workers: Workers decoding tiles; default: the data module's.
        overwrite: Replace a cache made with other settings.
        trainer_kwargs: Arguments of the `lightning.pytorch.Trainer` that runs
            the backbone (accelerator, devices, strategy, num_nodes,
            precision); logging and checkpointing are always off.
        say: Prints a progress message.

    Returns:
        A report.

    Raises:
        FeatureCacheError: If the backbone is not frozen, the config is not a
            SatCLIP one, an argument is out of range, or the output holds
            another cache or other files.
        HostMemoryError: If decoding would not fit into host memory.
    """
    if views < 1:
        raise FeatureCacheError(f'--views must be at least 1, got {views}')
    if dtype not in FEATURE_DTYPES:
        raise FeatureCacheError(
            f'--dtype must be one of {", ".join(FEATURE_DTYPES)}, got {dtype!r}'
        )
    if shard_size < 1 or batch_size < 1:
        raise FeatureCacheError('--shard-size and --batch-size must be at least 1')
    if not isinstance(datamodule, LiveTileSource):
        raise FeatureCacheError(
            f'cache-features reads the tiles of an S2100KDataModule (data.class_path '
            f'satclip_tg.datamodules.S2100KDataModule); the config gives '
            f'{type(datamodule).__name__}. Pass the live training config, not '
            f'the cached one'
        )
    started = time.perf_counter()
    out = pathlib.Path(output)
    if datamodule.kwargs.get('transforms') is not None:
        # The cache renders its views from the raw tiles; per-sample
        # transforms would change them in ways no manifest can record.
        raise FeatureCacheError(
            'cache-features does not support per-sample transforms '
            '(data.init_args.transforms): the cache renders its views from the '
            'raw tiles. Remove them from the config, or train on live tiles'
        )
    tiles = SatCLIPImageryDataset(**datamodule.kwargs)
    # Missing or odd tiles are reported before any work; with skip_unreadable
    # they get NaN features and are left out when training.
    datamodule.bad_tiles(tiles)
    datamodule.check_images(tiles)
    _check_bands(task, datamodule, tiles)
    manifest = build_manifest(
        task,
        datamodule,
        tiles,
        views=views,
        dtype=dtype,
        shard_size=shard_size,
        seed=datamodule.seed if seed is None else seed,
    )
    _prepare_output(out, manifest, overwrite)
    workers = datamodule.num_workers if num_workers is None else num_workers
    kwargs = dict(trainer_kwargs or {})
    trainer = pl.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        **kwargs,
    )
    _check_resources(
        out, manifest, tiles, workers, datamodule.prefetch_factor, trainer.num_devices
    )
    out.mkdir(parents=True, exist_ok=True)
    before = len(finished_shards(out, manifest))
    if trainer.is_global_zero:
        if not (out / MANIFEST_NAME).is_file():
            manifest.write(out)
        points = tiles.index[['lon', 'lat']].to_numpy(dtype=np.float64)
        with atomic_output(out / POINTS_NAME, overwrite=True) as path:
            np.save(path, points)
        say(
            f'feature cache {out}: {manifest.tiles} tiles x {views} views x '
            f'{manifest.feature_dim} features ({dtype}, '
            f'{format_bytes(manifest.feature_bytes)}) in {manifest.shards} shards; '
            f'{before} already done'
        )
    augmentation = SatCLIPBatchAugmentation(
        crop_size=datamodule.crop_size,
        train=True,
        scale=datamodule.scale,
        insert_zero_b10=datamodule.insert_zero_b10,
        flips=datamodule.flips,
        blur=datamodule.blur,
        coordinate_jitter=0.0,
        chunk_size=datamodule.augmentation_chunk_size,
        mean=datamodule.band_mean,
        std=datamodule.band_std,
    )
    writer = FeatureCacheWriter(
        _check_task(task),
        tiles,
        augmentation,
        manifest,
        out,
        batch_size=batch_size,
        num_workers=workers,
        prefetch_factor=datamodule.prefetch_factor,
    )
    trainer.predict(writer, return_predictions=False)
    trainer.strategy.barrier()
    missing = manifest.shards - len(finished_shards(out, manifest))
    if missing:
        raise FeatureCacheError(
            f'{missing} of {manifest.shards} shards are missing in {out} after the '
            f'run; run the same command again to finish them'
        )
    return CacheReport(manifest, out, before, time.perf_counter() - started)
