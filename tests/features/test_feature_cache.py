"""satclip-tg cache-features, the cache files, and training from a cache."""

import json
import os
import shutil
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from satclip_tg import load_location_encoder
from satclip_tg.cli import main
from satclip_tg.datamodules import (
    CachedFeatureDataModule,
    S2100KDataModule,
    train_val_indices,
)
from satclip_tg.datasets import SatCLIPImageryDataset
from satclip_tg.features import FeatureCache, FeatureCacheError, FeatureCacheManifest
from satclip_tg.features.writer import FeatureCacheWriter
from satclip_tg.tasks import SatCLIPTask
from satclip_tg.transforms import seeded_views

FIXTURE = Path(__file__).parents[1] / 'data' / 's2_100k'

TASK_ARGS: dict[str, Any] = {
    'model': 'resnet18',
    'weights': None,
    'in_channels': 13,
    'freeze_backbone': True,
    'positional_encoding': 'sphericalharmonics',
    'positional_encoding_args': {'legendre_polys': 4},
    'network': 'siren',
    'network_args': {'hidden_dim': 16, 'num_hidden_layers': 1, 'dropout': 0.0},
    'embed_dim': 8,
    'lr': 1e-3,
}
DATA_ARGS: dict[str, Any] = {
    'root': str(FIXTURE),
    'batch_size': 4,
    'crop_size': 16,
    'val_split_pct': 0.25,
    'seed': 0,
}


def write_config(path: Path, model: dict[str, Any] | None = None, **data: Any) -> Path:
    config = {
        'seed_everything': 0,
        'trainer': {'accelerator': 'cpu', 'devices': 1, 'precision': '32-true'},
        'model': {
            'class_path': 'satclip_tg.tasks.SatCLIPPretraining',
            'init_args': {**TASK_ARGS, **(model or {})},
        },
        'data': {
            'class_path': 'satclip_tg.datamodules.S2100KDataModule',
            'init_args': {**DATA_ARGS, **data},
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def cache(config: Path, output: Path, *extra: str) -> int:
    return main(
        [
            'cache-features',
            '--config',
            str(config),
            '--output',
            str(output),
            '--views',
            '3',
            '--shard-size',
            '5',
            *extra,
        ]
    )


@pytest.fixture(scope='module')
def cached(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A float32 cache of the 12-tile fixture, 3 views, shards of 5 tiles."""
    root = tmp_path_factory.mktemp('cache')
    config = write_config(root / 'live.yaml')
    assert cache(config, root / 'features', '--dtype', 'float32') == 0
    return root / 'features'


def make_task() -> SatCLIPTask:
    pl.seed_everything(0)
    return SatCLIPTask(**TASK_ARGS)


def test_cache_layout_and_manifest(cached: Path) -> None:
    names = sorted(p.name for p in cached.iterdir())
    assert names == [
        'features-00000.npy',
        'features-00001.npy',
        'features-00002.npy',
        'manifest.json',
        'points.npy',
    ]
    manifest = json.loads((cached / 'manifest.json').read_text())
    assert manifest['backbone'] == 'resnet18' and manifest['backbone_weights'] is None
    assert manifest['in_channels'] == 13 and manifest['feature_dim'] == 512
    assert manifest['views'] == 3 and manifest['dtype'] == 'float32'
    assert manifest['tiles'] == 12 and manifest['shards'] == 3
    assert manifest['data']['crop_size'] == 16 and manifest['data']['blur'] is True
    assert manifest['data']['image_dtype'] == 'uint16'
    assert len(manifest['index_sha256']) == 64
    assert len(manifest['backbone_sha256']) == 64
    assert manifest['satclip_tg_version']
    shapes = [np.load(cached / f'features-0000{i}.npy').shape for i in range(3)]
    assert shapes == [(5, 3, 512), (5, 3, 512), (2, 3, 512)]
    points = np.load(cached / 'points.npy')
    index = SatCLIPImageryDataset(FIXTURE).index
    np.testing.assert_array_equal(points, index[['lon', 'lat']].to_numpy(float))


def test_cached_features_are_the_backbone_output_on_the_same_view(
    cached: Path,
) -> None:
    task = make_task().eval()
    dm = S2100KDataModule(**DATA_ARGS)
    tiles = SatCLIPImageryDataset(FIXTURE)
    images = torch.stack([tiles[i]['image'] for i in range(12)])  # type: ignore[index]
    features = FeatureCache(cached).features()
    with torch.no_grad():
        for view in range(3):
            views = seeded_views(0, np.arange(12), view, 32, 32, 16)
            rendered = dm.train_aug.render(images, views)
            expected = task.image_encoder.encode_features(rendered)
            torch.testing.assert_close(
                torch.from_numpy(features[:, view]), expected, rtol=1e-5, atol=1e-5
            )
    # views differ from each other; view 0 is the deterministic centre crop
    assert not np.allclose(features[:, 0], features[:, 1])


def test_rerun_is_bit_identical_and_float16_by_default(
    cached: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path / 'live.yaml')
    assert cache(config, tmp_path / 'a') == 0
    again = tmp_path / 'b'
    assert cache(config, again) == 0
    for i in range(3):
        a = (tmp_path / 'a' / f'features-0000{i}.npy').read_bytes()
        assert a == (again / f'features-0000{i}.npy').read_bytes()
    half = FeatureCache(tmp_path / 'a').features()
    assert half.dtype == np.float16
    np.testing.assert_allclose(
        half.astype(np.float32), FeatureCache(cached).features(), rtol=2e-3, atol=1e-3
    )


def test_resume_after_a_kill_skips_finished_shards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / 'live.yaml')
    output = tmp_path / 'features'
    write_shard = FeatureCacheWriter.on_predict_batch_end

    def die_after_first(self: Any, outputs: Any, batch: Any, *args: Any) -> None:
        if int(batch['shard']) > 0:
            raise KeyboardInterrupt  # the process is killed mid-run
        write_shard(self, outputs, batch, *args)

    monkeypatch.setattr(FeatureCacheWriter, 'on_predict_batch_end', die_after_first)
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        cache(config, output)
    assert (output / 'features-00000.npy').is_file()
    assert not (output / 'features-00001.npy').exists()
    # a temporary file a SIGKILL left behind
    stale = output / '.features-00001.npy.abc123.partial.npy'
    stale.write_bytes(b'half a shard')
    os.utime(stale, (0, 0))
    first = (output / 'features-00000.npy').stat()
    with pytest.raises(FeatureCacheError, match='incomplete: 2 of 3 shards'):
        FeatureCache(output)

    monkeypatch.setattr(FeatureCacheWriter, 'on_predict_batch_end', write_shard)
    computed: list[int] = []
    step = FeatureCacheWriter.predict_step

    def counting(self: Any, batch: Any) -> Any:
        computed.append(int(batch['shard']))
        return step(self, batch)

    monkeypatch.setattr(FeatureCacheWriter, 'predict_step', counting)
    assert cache(config, output) == 0
    assert computed == [1, 2]  # the finished shard is not computed again
    assert (output / 'features-00000.npy').stat().st_mtime_ns == first.st_mtime_ns
    assert not stale.exists()
    fresh = tmp_path / 'fresh'
    assert cache(config, fresh) == 0
    np.testing.assert_array_equal(
        FeatureCache(output).features(), FeatureCache(fresh).features()
    )


def test_settings_mismatch_is_refused_unless_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / 'live.yaml')
    output = tmp_path / 'features'
    assert cache(config, output) == 0
    capsys.readouterr()
    other = write_config(tmp_path / 'other.yaml', crop_size=24)
    assert cache(other, output) == 1
    message = capsys.readouterr().err
    assert 'made with other settings' in message and "'crop_size': 16" in message
    assert '--overwrite' in message
    assert cache(other, output, '--overwrite') == 0
    assert FeatureCacheManifest.read(output).data['crop_size'] == 24


def test_unfrozen_backbone_and_foreign_folders_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / 'live.yaml', model={'freeze_backbone': False})
    assert cache(config, tmp_path / 'features') == 1
    assert 'is not frozen' in capsys.readouterr().err
    assert not (tmp_path / 'features').exists()
    busy = tmp_path / 'busy'
    busy.mkdir()
    (busy / 'notes.txt').write_text('mine')
    assert cache(write_config(tmp_path / 'ok.yaml'), busy) == 1
    assert 'other files' in capsys.readouterr().err
    assert (busy / 'notes.txt').read_text() == 'mine'


def test_float16_overflow_is_an_error_not_inf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / 'live.yaml')
    shard_features = FeatureCacheWriter.shard_features

    def huge(self: Any, images: Any, tiles: Any) -> Any:
        return shard_features(self, images, tiles) * 0 + 1e6

    monkeypatch.setattr(FeatureCacheWriter, 'shard_features', huge)
    assert cache(config, tmp_path / 'features') == 1
    assert 'pass --dtype float32' in capsys.readouterr().err
    assert not (tmp_path / 'features' / 'features-00000.npy').exists()


def test_datamodule_split_views_and_batches(cached: Path) -> None:
    dm = CachedFeatureDataModule(
        features=str(cached), batch_size=4, val_split_pct=0.25, seed=0
    )
    dm.setup('fit')
    live = S2100KDataModule(**DATA_ARGS)
    live.setup('fit')
    assert dm.train_dataset.tiles.tolist() == live.train_dataset.indices
    assert dm.val_dataset.tiles.tolist() == live.val_dataset.indices
    assert train_val_indices(12, 0.25, 0) == (
        live.train_dataset.indices,
        live.val_dataset.indices,
    )
    features = FeatureCache(cached).features()
    batches = list(dm.train_dataloader())
    assert len(batches) == 2  # 9 training tiles, batches of 4, last dropped
    views = torch.cat([b['view'] for b in batches])
    assert set(views.tolist()) <= {1, 2}
    for batch in batches:
        assert batch['features'].shape == (4, 512)
        assert batch['point'].shape == (4, 2) and batch['point'].dtype == torch.float32
        expected = features[batch['index'].numpy(), batch['view'].numpy()]
        np.testing.assert_array_equal(batch['features'].numpy(), expected)
    val = next(iter(dm.val_dataloader()))
    assert val['view'].tolist() == [0, 0, 0]
    np.testing.assert_array_equal(
        val['features'].numpy(), features[val['index'].numpy(), 0]
    )
    dm.setup('predict')
    assert len(dm.predict_dataset) == 12


def test_jitter_only_in_training(cached: Path) -> None:
    dm = CachedFeatureDataModule(
        features=str(cached), batch_size=4, coordinate_jitter=0.5
    )
    batch = {'features': torch.zeros(3, 5), 'point': torch.zeros(3, 2)}
    dm.trainer = pl.Trainer(accelerator='cpu', logger=False)
    dm.trainer.training = True
    moved = dm.on_after_batch_transfer(batch, 0)['point']
    assert 0 < float(moved.abs().max()) <= 0.5
    dm.trainer.validating = True
    assert torch.equal(dm.on_after_batch_transfer(batch, 0)['point'], batch['point'])


def test_unreadable_tiles_are_dropped(cached: Path, tmp_path: Path) -> None:
    copy = tmp_path / 'features'
    shutil.copytree(cached, copy)
    shard = np.load(copy / 'features-00000.npy')
    shard[2] = np.nan
    np.save(copy / 'features-00000.npy', shard)
    dm = CachedFeatureDataModule(features=str(copy), batch_size=4, val_split_pct=0)
    dm.setup('fit')
    assert 2 not in dm.train_dataset.tiles.tolist()
    assert len(dm.train_dataset) == 11


def test_incomplete_or_missing_cache(cached: Path, tmp_path: Path) -> None:
    with pytest.raises(FeatureCacheError, match=r'no manifest\.json'):
        CachedFeatureDataModule(features=str(tmp_path)).setup('fit')
    copy = tmp_path / 'features'
    shutil.copytree(cached, copy)
    (copy / 'features-00001.npy').unlink()
    with pytest.raises(FeatureCacheError, match='1 of 3 shards are missing'):
        CachedFeatureDataModule(features=str(copy)).setup('fit')


class Recorder(Callback):
    def __init__(self) -> None:
        self.batches: list[dict[str, torch.Tensor]] = []
        self.losses: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches.append({k: v.clone() for k, v in batch.items()})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs['loss']))


def fit(task: SatCLIPTask, steps: int, callback: Callback, **kwargs: Any) -> None:
    trainer = pl.Trainer(
        accelerator='cpu',
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[callback],
    )
    trainer.fit(task, **kwargs)


def test_cached_training_equals_live_training_on_the_cached_views(
    cached: Path,
) -> None:
    steps = 24
    cached_run = Recorder()
    dm = CachedFeatureDataModule(
        features=str(cached), batch_size=4, val_split_pct=0.25, coordinate_jitter=0.5
    )
    fit(make_task(), steps, cached_run, datamodule=dm)
    assert len(cached_run.losses) == steps

    # The live run sees the same tiles, views and jittered points, rendered
    # from the raw tiles by the live data module's preprocessing.
    live = S2100KDataModule(**DATA_ARGS)
    tiles = SatCLIPImageryDataset(FIXTURE)
    live_batches = []
    for batch in cached_run.batches:
        images = []
        for tile, view in zip(
            batch['index'].tolist(), batch['view'].tolist(), strict=True
        ):
            raw = tiles[tile]['image'][None]  # type: ignore[index]
            images.append(
                live.train_aug.render(raw, seeded_views(0, [tile], view, 32, 32, 16))
            )
        live_batches.append({'image': torch.cat(images), 'point': batch['point']})
    live_run = Recorder()
    loader = DataLoader(live_batches, batch_size=None)  # type: ignore[arg-type]
    fit(make_task(), steps, live_run, train_dataloaders=loader)
    np.testing.assert_allclose(live_run.losses, cached_run.losses, rtol=1e-4)
    assert len(set(cached_run.losses)) > steps // 2  # it really trained


def test_checkpoint_of_a_cached_run(cached: Path, tmp_path: Path) -> None:
    task = make_task()
    dm = CachedFeatureDataModule(features=str(cached), batch_size=4)
    trainer = pl.Trainer(
        accelerator='cpu',
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, datamodule=dm)
    path = tmp_path / 'cached.ckpt'
    trainer.save_checkpoint(path)
    encoder = load_location_encoder(path)
    points = torch.tensor([[2.35, 48.86], [-122.3, 47.6]])
    with torch.no_grad():
        torch.testing.assert_close(encoder(points), task.location_encoder(points))
    # the full image encoder (backbone and trained projection) comes back too
    restored = SatCLIPTask.load_from_checkpoint(path).eval()
    tiles = SatCLIPImageryDataset(FIXTURE)
    image = tiles[0]['image'][None]  # type: ignore[index]
    live = S2100KDataModule(**DATA_ARGS)
    model_input = live.val_aug.render(image, seeded_views(0, [0], 0, 32, 32, 16))
    feature = torch.from_numpy(FeatureCache(cached).features()[0, 0])[None]
    with torch.no_grad():
        torch.testing.assert_close(
            restored.image_encoder(model_input),
            restored.image_encoder.projection(feature),
            rtol=1e-5,
            atol=1e-5,
        )


def test_task_backbone_must_match_the_cache(cached: Path) -> None:
    dm = CachedFeatureDataModule(features=str(cached), batch_size=4)
    other = SatCLIPTask(**{**TASK_ARGS, 'model': 'resnet50'})
    trainer = pl.Trainer(accelerator='cpu', max_steps=1, logger=False)
    with pytest.raises(FeatureCacheError, match="model: cache 'resnet18'"):
        trainer.fit(other, datamodule=dm)
    pl.seed_everything(1)  # same architecture, other random weights
    reseeded = SatCLIPTask(**TASK_ARGS)
    with pytest.raises(FeatureCacheError, match='backbone weights differ'):
        trainer.fit(reseeded, datamodule=dm)


def test_fit_with_the_cached_overlay(cached: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / 'live.yaml')
    code = main(
        [
            'fit',
            '--config',
            str(config),
            '--config',
            'configs/cached.yaml',
            '--data.init_args.features',
            str(cached),
            '--data.init_args.batch_size',
            '4',
            '--trainer.fast_dev_run',
            'true',
            '--trainer.default_root_dir',
            str(tmp_path),
        ]
    )
    assert code == 0


def test_ranks_share_out_every_unfinished_shard_once(cached: Path) -> None:
    from types import SimpleNamespace

    manifest = FeatureCacheManifest.read(cached)
    tiles = SatCLIPImageryDataset(FIXTURE)
    writer = FeatureCacheWriter(
        torch.nn.Identity(),
        tiles,
        S2100KDataModule(**DATA_ARGS).train_aug,
        manifest,
        cached,
    )
    (cached / 'features-00001.npy').rename(cached / 'hidden.npy')
    try:
        taken = []
        for rank in range(2):
            writer._trainer = SimpleNamespace(world_size=2, global_rank=rank)
            taken += writer.predict_dataloader().dataset.shards
    finally:
        (cached / 'hidden.npy').rename(cached / 'features-00001.npy')
        writer._trainer = None
    assert taken == [1]  # only the missing shard, by exactly one rank


def test_missing_tiles_are_reported_before_caching(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / 'data'
    shutil.copytree(FIXTURE, data, ignore=shutil.ignore_patterns('*.py'))
    (data / 'images' / 'patch_7.tif').unlink()
    config = write_config(tmp_path / 'live.yaml', root=str(data))
    assert cache(config, tmp_path / 'features') == 1
    err = capsys.readouterr().err
    assert 'patch_7.tif' in err and 'missing' in err
    assert not (tmp_path / 'features').exists()


def test_band_mismatch_is_refused_before_caching(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / 'live.yaml', model={'in_channels': 3})
    assert cache(config, tmp_path / 'features') == 1
    assert 'produces 13-band images' in capsys.readouterr().err
    assert not (tmp_path / 'features').exists()
