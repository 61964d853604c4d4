"""Pretraining throughput: live tiles versus the feature cache, and host memory.

On S2-100K-layout tiles (the two real S2-100K patches in
``../shared/data/s2-100k-sample``, replicated under synthetic coordinates;
synthetic uint16 tiles if they are absent) with the released location encoder
(L = 40 spherical harmonics, SIREN 512 x 2, 256-d) and a frozen resnet18 with
random weights at crop 224 (13 bands), it measures in one run:

(a) live training samples/s (`S2100KDataModule`, tiles decoded by a worker,
    augmented in chunks, backbone forward, projection and location encoder);
(b) feature-caching tiles/s at V views (`satclip-tg cache-features`: one
    decode per tile, V backbone forwards);
(c) cached training samples/s, device resident (`CachedFeatureDataModule`),
    at the live batch size (the like-for-like epoch speed-up) and at the
    configs' batch of 8192 (the 500-epoch projection);
(d) host bytes per sample in the live loader's batches, and the peak RSS of
    this process and its loader workers.

It then projects 500 epochs of S2-100K (100,000 tiles): live, versus caching
V views once plus 500 cached epochs. The last line reads (one line)::

    cached epoch speed-up: <x>x; projected 500-epoch S2-100K: live <h> h,
    cached <h> h; live host bytes/sample: <n>

Threads: the live run computes on all cores but one, which its loader worker
uses to decode tiles; the device-resident cached run has no worker and
computes on every core.

Usage::

    python benchmarks/pretraining_throughput.py            # about 3 minutes
    python benchmarks/pretraining_throughput.py --repeats 3 --views 16
    python benchmarks/pretraining_throughput.py --tile-check 100000 # setup, decode
"""

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import rasterio
import torch
from lightning.pytorch.callbacks import Callback

from satclip_tg.datamodules import CachedFeatureDataModule, S2100KDataModule
from satclip_tg.datasets.s2_100k import SatCLIPImageryDataset
from satclip_tg.features import FeatureCacheManifest
from satclip_tg.features.manifest import POINTS_NAME, shard_name
from satclip_tg.features.writer import cache_features
from satclip_tg.tasks import SatCLIPPretraining

REAL = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 's2-100k-sample'
S2_100K_TILES = 100_000
EPOCHS = 500

TASK = {
    'model': 'resnet18',
    'weights': None,
    'in_channels': 13,
    'freeze_backbone': True,
    'positional_encoding': 'sphericalharmonics',
    'positional_encoding_args': {'legendre_polys': 40},
    'network': 'siren',
    'network_args': {'hidden_dim': 512, 'num_hidden_layers': 2},
    'embed_dim': 256,
}


def make_tiles(root: Path, count: int) -> str:
    """S2-100K layout with ``count`` tiles; returns where the pixels came from."""
    images = root / 'images'
    images.mkdir(parents=True)
    generator = np.random.default_rng(0)
    sources = sorted((REAL / 'images').glob('*.tif')) if REAL.is_dir() else []
    rows = []
    for i in range(count):
        name = f'patch_{i}.tif'
        if sources:
            # Hard links: the real compressed files, read like distinct tiles.
            try:
                os.link(sources[i % len(sources)], images / name)
            except OSError:
                shutil.copy(sources[i % len(sources)], images / name)
        else:
            with rasterio.open(
                images / name,
                'w',
                driver='GTiff',
                dtype='uint16',
                count=12,
                height=256,
                width=256,
                compress='lzw',
            ) as dst:
                dst.write(generator.integers(0, 10000, (12, 256, 256), dtype=np.uint16))
        lon = generator.uniform(-180, 180)
        lat = float(np.degrees(np.arcsin(generator.uniform(-1, 1))))
        rows.append({'fn': name, 'lon': lon, 'lat': lat})
    pd.DataFrame(rows).to_csv(root / 'index.csv', index=False)
    return (
        f'the 2 real S2-100K patches in {REAL}'
        if sources
        else 'synthetic uint16 tiles (real patches not found)'
    )


class StepTimer(Callback):
    """Wall time of training steps after ``warmup`` steps."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start = 0.0
        self.samples = 0
        self.steps = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.steps == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.steps >= self.warmup:
            self.samples += len(batch['point'])
        self.steps += 1

    def rate(self) -> float:
        return self.samples / (time.perf_counter() - self.start)


def trainer(steps: int, callback: Callback) -> pl.Trainer:
    return pl.Trainer(
        accelerator='cpu',
        devices=1,
        precision='32-true',
        max_steps=steps,
        max_epochs=-1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )


def task() -> SatCLIPPretraining:
    pl.seed_everything(0, verbose=False)
    return SatCLIPPretraining(**TASK)


def live_datamodule(root: Path, batch_size: int) -> S2100KDataModule:
    return S2100KDataModule(
        root=str(root),
        batch_size=batch_size,
        num_workers=1,
        val_split_pct=0.0,
        crop_size=224,
    )


def measure_live(root: Path, batch_size: int, steps: int) -> float:
    timer = StepTimer(warmup=2)
    trainer(steps + 2, timer).fit(task(), datamodule=live_datamodule(root, batch_size))
    return timer.rate()


def host_bytes_per_sample(root: Path, batch_size: int) -> float:
    dm = live_datamodule(root, batch_size)
    dm.setup('fit')
    batch = next(iter(dm.train_dataloader()))
    size = sum(v.nbytes for v in batch.values() if isinstance(v, torch.Tensor))
    return (size - batch['skipped'].nbytes) / len(batch['point'])


def replicate_cache(source: Path, target: Path, tiles: int) -> None:
    """A cache of ``tiles`` tiles whose rows repeat the measured cache's."""
    manifest = FeatureCacheManifest.read(source)
    features = np.concatenate(
        [np.load(source / shard_name(s)) for s in range(manifest.shards)]
    )
    points = np.load(source / POINTS_NAME)
    big = replace(manifest, tiles=tiles, shard_size=tiles)
    target.mkdir()
    big.write(target)
    repeats = -(-tiles // len(features))
    np.save(target / shard_name(0), np.tile(features, (repeats, 1, 1))[:tiles])
    noise = np.random.default_rng(1).uniform(-1, 1, (tiles, 2))
    np.save(target / POINTS_NAME, np.tile(points, (repeats, 1))[:tiles] * 0 + noise)


def measure_cached(cache: Path, batch_size: int, steps: int, threads: int) -> float:
    timer = StepTimer(warmup=2)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    dm = CachedFeatureDataModule(
        features=str(cache),
        batch_size=batch_size,
        val_split_pct=0.0,
        device_resident=True,
    )
    try:
        trainer(steps + 2, timer).fit(task(), datamodule=dm)
    finally:
        torch.set_num_threads(previous)
    return timer.rate()


def measure_tile_check(root: Path, tiles: int) -> None:
    """Time the setup's header check (`check_tiles`) and decoding, one folder."""
    origin = make_tiles(root, tiles)
    dataset = SatCLIPImageryDataset(str(root))
    report = dataset.check_tiles()
    per_tile = report.seconds / tiles * 1000
    # For comparison: a plain rasterio.open (lists the folder, builds the CRS).
    sample = dataset.files[:1000]
    started = time.perf_counter()
    for path in sample:
        with rasterio.open(path) as src:
            src.count  # noqa: B018
    plain = (time.perf_counter() - started) / len(sample) * 1000
    # Decoding whole tiles (what live training does every epoch), one thread.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    started = time.perf_counter()
    for index in range(200):
        dataset[index]
    decodes = 200 / (time.perf_counter() - started)
    torch.set_num_threads(previous)
    print(f'tiles: {tiles} from {origin}')
    print(
        f'header check: {report.seconds:.2f} s for {tiles:,} tiles in one folder '
        f'({per_tile:.3f} ms per tile, ok={report.ok}); plain rasterio.open: '
        f'{plain:.3f} ms per tile'
    )
    print(f'decoding: {decodes:.0f} tiles/s on one core (files in the page cache)')


def peak_rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f'{values[0]:.1f}'
    return (
        f'{statistics.median(values):.1f} (range {min(values):.1f}-{max(values):.1f})'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tiles', type=int, default=48, help='tiles on disk')
    parser.add_argument('--views', type=int, default=16, help='cached views (V)')
    parser.add_argument('--live-batch', type=int, default=16)
    parser.add_argument('--live-steps', type=int, default=8)
    parser.add_argument('--cached-tiles', type=int, default=65_536)
    parser.add_argument('--cached-steps', type=int, default=30)
    parser.add_argument('--big-batch-steps', type=int, default=6)
    parser.add_argument('--repeats', type=int, default=1)
    parser.add_argument('--json', type=Path, help='also write the figures here')
    parser.add_argument(
        '--tile-check',
        type=int,
        metavar='N',
        help='only time the setup header check (check_tiles) on N tiles in one '
        'folder (e.g. 100000, as S2-100K) and tile decoding, and stop',
    )
    args = parser.parse_args()
    if args.tile_check:
        with tempfile.TemporaryDirectory() as folder:
            measure_tile_check(Path(folder) / 'tiles', args.tile_check)
        return
    cores = len(os.sched_getaffinity(0))
    # One core computes, the loader worker decodes on the other.
    torch.set_num_threads(max(1, cores - 1))
    print(
        f'machine: {platform.machine()}, {cores} cores, torch {torch.__version__}, '
        f'{torch.get_num_threads()} compute thread(s) + 1 loader worker'
    )
    live_rates, cache_rates, small_rates, big_rates = [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        origin = make_tiles(work / 'tiles', args.tiles)
        print(f'tiles: {args.tiles} x 12 x 256 x 256 uint16 from {origin}')
        bytes_per_sample = host_bytes_per_sample(work / 'tiles', args.live_batch)
        for repeat in range(args.repeats):
            live_rates.append(
                measure_live(work / 'tiles', args.live_batch, args.live_steps)
            )
            output = work / f'cache-{repeat}'
            dm = live_datamodule(work / 'tiles', args.live_batch)
            report = cache_features(
                task(),
                dm,
                output,
                views=args.views,
                trainer_kwargs={'accelerator': 'cpu', 'devices': 1},
                say=lambda _: None,
            )
            cache_rates.append(args.tiles / report.seconds)
            big = work / f'big-{repeat}'
            replicate_cache(output, big, args.cached_tiles)
            small_rates.append(
                measure_cached(big, args.live_batch, args.cached_steps, cores)
            )
            big_rates.append(measure_cached(big, 8192, args.big_batch_steps, cores))
            shutil.rmtree(big)
            print(
                f'run {repeat + 1}: live {live_rates[-1]:.1f} samples/s, caching '
                f'{cache_rates[-1]:.1f} tiles/s (V={args.views}), cached '
                f'{small_rates[-1]:.0f} samples/s at batch {args.live_batch}, '
                f'{big_rates[-1]:.0f} at batch 8192'
            )
    own_mb, children_mb = peak_rss_mb()
    live = statistics.median(live_rates)
    caching = statistics.median(cache_rates)
    cached_small = statistics.median(small_rates)
    cached_big = statistics.median(big_rates)
    speedup = cached_small / live
    live_hours = EPOCHS * S2_100K_TILES / live / 3600
    cache_hours = S2_100K_TILES / caching / 3600
    cached_hours = cache_hours + EPOCHS * S2_100K_TILES / cached_big / 3600
    print()
    batch = f'batch {args.live_batch}'
    print(f'(a) live training:      {spread(live_rates)} samples/s ({batch})')
    print(
        f'(b) feature caching:    {spread(cache_rates)} tiles/s at V={args.views} '
        f'({caching * args.views:.1f} backbone forwards/s)'
    )
    print(
        f'(c) cached training:    {spread(small_rates)} samples/s at batch '
        f'{args.live_batch}; {spread(big_rates)} samples/s at batch 8192 '
        f'(device resident)'
    )
    print(
        f'(d) live host memory:   {bytes_per_sample:,.0f} bytes/sample in loader '
        f'batches; peak RSS {own_mb:,.0f} MB (this process), {children_mb:,.0f} MB '
        f'(largest loader worker)'
    )
    print(
        f'projection, 500 epochs of {S2_100K_TILES:,} tiles: live {live_hours:,.1f} h; '
        f'cached {cache_hours:,.1f} h to cache V={args.views} + '
        f'{cached_hours - cache_hours:,.2f} h of training = {cached_hours:,.1f} h '
        f'({cached_hours / live_hours:.4f} of live)'
    )
    figures: dict[str, Any] = {
        'live_samples_per_s': live_rates,
        'caching_tiles_per_s': cache_rates,
        'cached_samples_per_s_live_batch': small_rates,
        'cached_samples_per_s_batch_8192': big_rates,
        'live_host_bytes_per_sample': bytes_per_sample,
        'peak_rss_mb': own_mb,
        'peak_rss_children_mb': children_mb,
        'projected_live_hours': live_hours,
        'projected_cached_hours': cached_hours,
        'views': args.views,
    }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + '\n')
    print(
        f'cached epoch speed-up: {speedup:.0f}x; projected 500-epoch S2-100K: '
        f'live {live_hours:.1f} h, cached {cached_hours:.1f} h; live host '
        f'bytes/sample: {bytes_per_sample:.0f}'
    )


if __name__ == '__main__':
    main()
