"""GPU check of the pretraining paths, in one short run (under 8 minutes).

On one CUDA GPU it runs, on synthetic S2-100K-format tiles (12 x 256 x 256
uint16 GeoTIFFs, hard-linked from a few unique ones so the disk holds little):

1. a live ``fit`` of the sh_l40_vit recipe (frozen vit_small_patch16_224, 13
   bands, crop 224, L = 40 + SIREN 512 x 2) at batch 512, bf16-mixed, for 20
   steps;
2. ``cache-features`` of the same recipe on 4096 tiles with V = 4;
3. a cached ``fit`` at batch 8192, device resident, for 3 epochs (the cache
   replicated to 100,000 tiles, the size of S2-100K).

For each it prints the throughput and ``torch.cuda.max_memory_allocated``.
With two or more GPUs it also checks, under DDP (NCCL), that the loss with
negatives gathered across ranks equals the single-process loss on the whole
batch. The backbone has random weights: the machine cannot download the
SSL4EO-S12 ones, and the weights do not change the cost.

``--smoke`` runs the same code on the CPU at toy sizes, to test the script
itself where there is no GPU.

Usage::

    python benchmarks/gpu_check.py            # on a GPU machine
    python benchmarks/gpu_check.py --smoke    # anywhere, in seconds
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import rasterio
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.pytorch.callbacks import Callback

from satclip_tg.datamodules import CachedFeatureDataModule, S2100KDataModule
from satclip_tg.features import FeatureCacheManifest
from satclip_tg.features.manifest import POINTS_NAME, shard_name
from satclip_tg.features.writer import cache_features
from satclip_tg.losses import ClipLoss
from satclip_tg.tasks import SatCLIPPretraining


@dataclass(frozen=True)
class Sizes:
    """The sizes of one run."""

    tile: int
    crop: int
    live_batch: int
    live_steps: int
    cache_tiles: int
    views: int
    cached_tiles: int
    cached_batch: int
    cached_epochs: int
    workers: int
    backbone: str
    legendre_polys: int


FULL = Sizes(
    256, 224, 512, 20, 4096, 4, 100_000, 8192, 3, 16, 'vit_small_patch16_224', 40
)
SMOKE = Sizes(32, 16, 8, 3, 24, 2, 512, 64, 1, 0, 'resnet18', 10)


def write_tiles(root: Path, count: int, size: int, unique: int = 32) -> None:
    images = root / 'images'
    images.mkdir(parents=True)
    generator = np.random.default_rng(0)
    for i in range(min(unique, count)):
        with rasterio.open(
            images / f'unique_{i}.tif',
            'w',
            driver='GTiff',
            dtype='uint16',
            count=12,
            height=size,
            width=size,
            compress='lzw',
        ) as dst:
            dst.write(generator.integers(0, 10000, (12, size, size), dtype=np.uint16))
    rows = []
    for i in range(count):
        name = f'patch_{i}.tif'
        os.link(images / f'unique_{i % unique}.tif', images / name)
        lat = float(np.degrees(np.arcsin(generator.uniform(-1, 1))))
        rows.append({'fn': name, 'lon': generator.uniform(-180, 180), 'lat': lat})
    pd.DataFrame(rows).to_csv(root / 'index.csv', index=False)


class Throughput(Callback):
    """Samples per second of the training steps after the first two."""

    def __init__(self) -> None:
        self.steps = 0
        self.samples = 0
        self.start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.steps == 2:
            _sync()
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.steps >= 2:
            self.samples += len(batch['point'])
        self.steps += 1

    def rate(self) -> float:
        _sync()
        return self.samples / max(time.perf_counter() - self.start, 1e-9)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _reset_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _peak_memory() -> str:
    if not torch.cuda.is_available():
        return 'n/a (CPU)'
    return f'{torch.cuda.max_memory_allocated() / 1e9:.2f} GB'


def task(sizes: Sizes) -> SatCLIPPretraining:
    pl.seed_everything(0, verbose=False)
    return SatCLIPPretraining(
        model=sizes.backbone,
        weights=None,
        in_channels=13,
        freeze_backbone=True,
        positional_encoding='sphericalharmonics',
        positional_encoding_args={'legendre_polys': sizes.legendre_polys},
        network='siren',
        network_args={'hidden_dim': 512, 'num_hidden_layers': 2},
        embed_dim=256,
    )


def trainer(gpu: bool, callbacks: list[Callback], **kwargs: Any) -> pl.Trainer:
    return pl.Trainer(
        accelerator='gpu' if gpu else 'cpu',
        devices=1,
        precision='bf16-mixed' if gpu else '32-true',
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=callbacks,
        **kwargs,
    )


def live_datamodule(root: Path, sizes: Sizes, batch: int) -> S2100KDataModule:
    return S2100KDataModule(
        root=str(root),
        batch_size=batch,
        num_workers=sizes.workers,
        val_split_pct=0.0,
        crop_size=sizes.crop,
        pin_memory=torch.cuda.is_available(),
    )


def live_fit(root: Path, sizes: Sizes, gpu: bool) -> None:
    _reset_memory()
    meter = Throughput()
    trainer(gpu, [meter], max_steps=sizes.live_steps + 2).fit(
        task(sizes), datamodule=live_datamodule(root, sizes, sizes.live_batch)
    )
    print(
        f'1. live fit, batch {sizes.live_batch}, {sizes.live_steps} steps: '
        f'{meter.rate():,.0f} samples/s; max_memory_allocated {_peak_memory()}',
        flush=True,
    )


def cache(root: Path, output: Path, sizes: Sizes, gpu: bool) -> float:
    _reset_memory()
    report = cache_features(
        task(sizes),
        live_datamodule(root, sizes, sizes.live_batch),
        output,
        views=sizes.views,
        batch_size=512,
        shard_size=256,
        trainer_kwargs={
            'accelerator': 'gpu' if gpu else 'cpu',
            'devices': 1,
            'precision': 'bf16-mixed' if gpu else '32-true',
            'enable_progress_bar': False,
        },
        say=lambda _: None,
    )
    rate = sizes.cache_tiles / report.seconds
    print(
        f'2. cache-features, {sizes.cache_tiles} tiles x V={sizes.views}: '
        f'{rate:,.0f} tiles/s ({rate * sizes.views:,.0f} backbone forwards/s, '
        f'{report.seconds:.1f} s with set-up); max_memory_allocated {_peak_memory()}',
        flush=True,
    )
    return rate


def replicate(source: Path, target: Path, tiles: int) -> None:
    manifest = FeatureCacheManifest.read(source)
    features = np.concatenate(
        [np.load(source / shard_name(s)) for s in range(manifest.shards)]
    )
    repeats = -(-tiles // len(features))
    target.mkdir()
    replace(manifest, tiles=tiles, shard_size=tiles).write(target)
    np.save(target / shard_name(0), np.tile(features, (repeats, 1, 1))[:tiles])
    generator = np.random.default_rng(1)
    lat = np.degrees(np.arcsin(generator.uniform(-1, 1, tiles)))
    points = np.stack([generator.uniform(-180, 180, tiles), lat], axis=1)
    np.save(target / POINTS_NAME, points)


def cached_fit(cache_dir: Path, sizes: Sizes, gpu: bool) -> None:
    _reset_memory()
    meter = Throughput()
    dm = CachedFeatureDataModule(
        features=str(cache_dir),
        batch_size=sizes.cached_batch,
        val_split_pct=0.1,
        device_resident=True,
    )
    start = time.perf_counter()
    trainer(gpu, [meter], max_epochs=sizes.cached_epochs).fit(
        task(sizes), datamodule=dm
    )
    seconds = time.perf_counter() - start
    print(
        f'3. cached fit, batch {sizes.cached_batch}, device resident, '
        f'{sizes.cached_epochs} epochs of {int(sizes.cached_tiles * 0.9):,} tiles: '
        f'{meter.rate():,.0f} samples/s ({seconds:.1f} s with set-up); '
        f'max_memory_allocated {_peak_memory()}',
        flush=True,
    )


def _ddp_worker(rank: int, world: int, port: int, batch: int, result: Any) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('nccl', rank=rank, world_size=world)
    torch.cuda.set_device(rank)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(world * batch, 256, generator=generator).cuda()
    locations = torch.randn(world * batch, 256, generator=generator).cuda()
    scale = torch.tensor(1 / 0.07, device='cuda')
    rows = slice(rank * batch, (rank + 1) * batch)
    gathered = ClipLoss(gather_across_processes=True)(
        images[rows], locations[rows], scale
    )
    if rank == 0:
        whole = ClipLoss(gather_across_processes=False)(images, locations, scale)
        result.put((float(gathered), float(whole)))
    dist.destroy_process_group()


def ddp_check(gpus: int) -> None:
    context = mp.get_context('spawn')
    queue = context.Queue()
    processes = [
        context.Process(target=_ddp_worker, args=(rank, gpus, 29517, 1024, queue))
        for rank in range(gpus)
    ]
    for process in processes:
        process.start()
    gathered, whole = queue.get(timeout=120)
    for process in processes:
        process.join()
    equal = abs(gathered - whole) <= 1e-4 * abs(whole)
    print(
        f'4. DDP on {gpus} GPUs: gathered loss {gathered:.6f}, single-process loss '
        f'{whole:.6f}: {"EQUAL" if equal else "DIFFERENT"}',
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--smoke', action='store_true', help='toy sizes on the CPU')
    parser.add_argument('--workdir', type=Path, default=None)
    args = parser.parse_args()
    gpu = torch.cuda.is_available() and not args.smoke
    if not gpu and not args.smoke:
        print(
            'no CUDA GPU here: run on a GPU machine, or pass --smoke', file=sys.stderr
        )
        return 2
    sizes = FULL if gpu else SMOKE
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        name = torch.cuda.get_device_name(0)
        print(f'GPU: {name} x {torch.cuda.device_count()}, torch {torch.__version__}')
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(dir=args.workdir))
    try:
        tiles = max(sizes.cache_tiles, sizes.live_batch * (sizes.live_steps + 2))
        write_tiles(folder / 'tiles', tiles, sizes.tile)
        live_fit(folder / 'tiles', sizes, gpu)
        cache_root = folder / 'cache-tiles'
        write_tiles(cache_root, sizes.cache_tiles, sizes.tile)
        cache(cache_root, folder / 'cache', sizes, gpu)
        replicate(folder / 'cache', folder / 'big', sizes.cached_tiles)
        cached_fit(folder / 'big', sizes, gpu)
        if gpu and torch.cuda.device_count() >= 2:
            ddp_check(torch.cuda.device_count())
        elif gpu:
            print('4. DDP check skipped: one GPU')
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f'gpu_check finished in {time.perf_counter() - started:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
