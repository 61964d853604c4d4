import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.demos.boring_classes import BoringModel
from rasterio.transform import from_origin
from torch import Tensor, nn
from torch.utils.data import Subset
from torchgeo.datamodules import BaseDataModule, NonGeoDataModule

from satclip_tg.datamodules import (
    S2100KDataModule,
    SatCLIPBatchAugmentation,
    SkipUnreadableCollate,
)
from satclip_tg.datamodules.s2_100k import train_val_indices
from satclip_tg.datasets import UnreadableTileError, UnreadableTileWarning
from satclip_tg.datasets.s2_100k import TileCheckError
from satclip_tg.location.coordinates import validate_coordinates
from satclip_tg.tasks import SatCLIPTask
from satclip_tg.tasks.satclip import _batch_of_one

FIXTURE = Path(__file__).parents[1] / 'data' / 's2_100k'
REAL = Path(__file__).resolve().parents[3] / 'shared' / 'data' / 's2-100k-sample'


def copy_fixture(tmp_path: Path) -> Path:
    root = tmp_path / 'data'
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns('*.py'))
    return root


def make_dm(root: Path = FIXTURE, **kwargs: Any) -> S2100KDataModule:
    defaults: dict[str, Any] = {'batch_size': 4, 'crop_size': 16}
    return S2100KDataModule(root=str(root), **{**defaults, **kwargs})


def transfer(dm: S2100KDataModule, batch: dict[str, Tensor], stage: str) -> Any:
    dm.trainer = Trainer(accelerator='cpu', logger=False, enable_progress_bar=False)
    setattr(dm.trainer, stage, True)
    return dm.on_after_batch_transfer(batch, 0)


def test_is_a_torchgeo_datamodule() -> None:
    assert issubclass(S2100KDataModule, NonGeoDataModule)
    assert issubclass(S2100KDataModule, BaseDataModule)


def test_lightning_cli_reads_the_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, 'argv', ['torchgeo'])
    cli = LightningCLI(
        BoringModel,
        BaseDataModule,
        subclass_mode_data=True,
        seed_everything_default=0,
        run=False,
        args=[
            '--data.class_path',
            'satclip_tg.datamodules.S2100KDataModule',
            '--data.init_args.root',
            str(FIXTURE),
            '--data.init_args.scale',
            'null',
            '--data.init_args.crop_size',
            '24',
            '--data.init_args.download',
            'true',
            '--trainer.logger',
            'false',
            '--trainer.default_root_dir',
            str(tmp_path),
        ],
    )
    dm = cli.datamodule
    assert isinstance(dm, S2100KDataModule)
    assert dm.scale is None and dm.crop_size == 24
    assert dm.kwargs['download'] is True


@pytest.mark.parametrize(
    'kwargs',
    [
        {'val_split_pct': 1.0},
        {'val_split_pct': -0.1},
        {'batch_size': 0},
        {'crop_size': 0},
        {'scale': 0.0},
        {'coordinate_jitter': -1.0},
        {'coordinate_jitter': float('nan')},
    ],
)
def test_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        make_dm(**kwargs)


def test_fit_split_and_loaders() -> None:
    dm = make_dm(val_split_pct=0.25)
    dm.setup('fit')
    assert isinstance(dm.train_dataset, Subset) and isinstance(dm.val_dataset, Subset)
    assert len(dm.train_dataset) == 9 and len(dm.val_dataset) == 3
    assert set(dm.train_dataset.indices).isdisjoint(dm.val_dataset.indices)
    loader = dm.train_dataloader()
    assert loader.drop_last and not loader.persistent_workers
    batches = list(loader)
    assert len(batches) == 2  # 9 samples, batches of 4, last one dropped
    batch = batches[0]
    assert batch['image'].shape == (4, 12, 32, 32)
    assert batch['point'].shape == (4, 2)
    assert int(batch['skipped']) == 0
    val = list(dm.val_dataloader())
    assert [len(b['point']) for b in val] == [3]


def test_small_train_split_keeps_its_only_batch() -> None:
    dm = make_dm(batch_size=64)
    dm.setup('fit')
    loader = dm.train_dataloader()
    assert not loader.drop_last
    assert len(list(loader)) == 1


def test_split_is_deterministic() -> None:
    def split(seed: int) -> tuple[list[int], list[int]]:
        dm = make_dm(val_split_pct=0.5, seed=seed)
        dm.setup('fit')
        assert isinstance(dm.train_dataset, Subset)
        assert isinstance(dm.val_dataset, Subset)
        return list(dm.train_dataset.indices), list(dm.val_dataset.indices)

    assert split(0) == split(0)
    assert split(0) != split(1)
    # validate uses the same split as fit
    dm = make_dm(val_split_pct=0.5, seed=0)
    dm.setup('validate')
    assert isinstance(dm.val_dataset, Subset)
    assert list(dm.val_dataset.indices) == split(0)[1]


def test_no_validation_set() -> None:
    dm = make_dm(val_split_pct=0.0)
    dm.setup('fit')
    assert dm.val_dataset is None
    assert isinstance(dm.train_dataset, Subset) and len(dm.train_dataset) == 12
    assert dm.val_dataloader() == []


def test_test_and_predict_use_everything() -> None:
    dm = make_dm(batch_size=5)
    for stage in ('test', 'predict'):
        dm.setup(stage)
    assert [len(b['point']) for b in dm.test_dataloader()] == [5, 5, 2]
    assert [len(b['point']) for b in dm.predict_dataloader()] == [5, 5, 2]


def test_val_batch_after_transfer_is_scaled_b10_center_crop() -> None:
    dm = make_dm(val_split_pct=0.0, batch_size=12)
    dm.setup('predict')
    raw = next(iter(dm.predict_dataloader()))
    out = transfer(dm, raw, 'validating')
    assert out['image'].shape == (12, 13, 16, 16)
    assert out['image'].dtype == torch.float32
    assert torch.equal(out['image'][:, 10], torch.zeros(12, 16, 16))
    expected = raw['image'][:, :, 8:24, 8:24] / 10000
    torch.testing.assert_close(out['image'][:, :10], expected[:, :10])
    torch.testing.assert_close(out['image'][:, 11:], expected[:, 10:])
    torch.testing.assert_close(out['point'], raw['point'])  # no jitter
    assert set(out) == {'image', 'point'}  # the count left the batch
    assert dm.skipped_tiles['val'] == 0
    # deterministic
    again = transfer(dm, raw, 'testing')
    assert torch.equal(again['image'], out['image'])


def test_scale_none_and_no_b10() -> None:
    dm = make_dm(scale=None, insert_zero_b10=False)
    dm.setup('predict')
    raw = next(iter(dm.predict_dataloader()))
    out = transfer(dm, raw, 'predicting')
    assert out['image'].shape == (4, 12, 16, 16)
    assert raw['image'].dtype == torch.uint16  # converted on the device only
    torch.testing.assert_close(out['image'], raw['image'][:, :, 8:24, 8:24].float())


def test_train_batch_after_transfer() -> None:
    torch.manual_seed(0)
    dm = make_dm(batch_size=8, coordinate_jitter=0.5)
    dm.setup('fit')
    raw = next(iter(dm.train_dataloader()))
    out = transfer(dm, raw, 'training')
    assert out['image'].shape == (8, 13, 16, 16)
    assert torch.equal(out['image'][:, 10], torch.zeros(8, 16, 16))
    assert float(out['image'].max()) <= 1.0  # scaled, blur does not overshoot
    delta = out['point'] - raw['point']
    delta[:, 0] = (delta[:, 0] + 180) % 360 - 180  # across the dateline
    assert float(delta.abs().max()) <= 0.5 + 1e-5
    assert float(delta.abs().max()) > 0
    validate_coordinates(out['point'])


def test_train_augmentation_crops_are_random_windows() -> None:
    torch.manual_seed(0)
    aug = SatCLIPBatchAugmentation(
        crop_size=4,
        train=True,
        scale=None,
        insert_zero_b10=False,
        flips=False,
        blur=False,
        coordinate_jitter=0.0,
    )
    image = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8)
    out = aug({'image': image, 'point': torch.zeros(2, 2)})
    windows = {
        (i, j) for i in range(5) for j in range(5)
    }  # every crop must be an exact 4x4 window of its input
    for b in range(2):
        assert any(
            torch.equal(out['image'][b], image[b, :, i : i + 4, j : j + 4])
            for i, j in windows
        )
    assert torch.equal(out['point'], torch.zeros(2, 2))


def test_jitter_is_symmetric_bounded_and_valid() -> None:
    torch.manual_seed(0)
    aug = SatCLIPBatchAugmentation(crop_size=1, train=True, coordinate_jitter=0.01)
    points = torch.zeros(20000, 2)
    delta = aug.jitter(points)
    assert float(delta.abs().max()) <= 0.01
    assert float(delta.min()) < -0.009 and float(delta.max()) > 0.009
    assert abs(float(delta.mean())) < 2e-4  # symmetric: no drift
    edges = torch.tensor([[180.0, 90.0], [-180.0, -90.0]]).repeat(5000, 1)
    moved = aug.jitter(edges)
    validate_coordinates(moved)
    assert (moved[:, 0].abs() > 179.98).all()  # wrapped, not clamped
    assert (moved[:, 0] < 0).any() and (moved[:, 0] > 0).any()
    assert (moved[:, 1].abs() > 89.98).all()
    off = SatCLIPBatchAugmentation(crop_size=1, train=False, coordinate_jitter=0.01)
    assert torch.equal(off.jitter(points), points)


def write_three_band(root: Path) -> None:
    (root / 'images').mkdir(parents=True)
    rows = []
    for i in range(3):
        fn = f'rgb_{i}.tif'
        with rasterio.open(
            root / 'images' / fn,
            'w',
            driver='GTiff',
            dtype='uint8',
            count=3,
            height=24,
            width=24,
            crs='EPSG:32632',
            transform=from_origin(400000, 5000000, 1, 1),
        ) as dst:
            dst.write(np.full((3, 24, 24), 100 + i, dtype=np.uint8))
        rows.append({'fn': fn, 'lon': 9.0 + i, 'lat': 45.0})
    pd.DataFrame(rows).to_csv(root / 'index.csv', index=False)


def test_b10_needs_twelve_bands(tmp_path: Path) -> None:
    write_three_band(tmp_path)
    dm = make_dm(tmp_path)
    with pytest.raises(ValueError, match=r'12 bands.*have 3'):
        dm.setup('fit')
    dm = make_dm(tmp_path, insert_zero_b10=False, scale=255.0, val_split_pct=0.0)
    dm.setup('predict')
    out = transfer(dm, next(iter(dm.predict_dataloader())), 'predicting')
    assert out['image'].shape == (3, 3, 16, 16)


def test_crop_larger_than_patch() -> None:
    dm = make_dm(crop_size=64)
    with pytest.raises(ValueError, match=r'32x32 pixels.*crop_size=64'):
        dm.setup('fit')


@pytest.mark.parametrize(
    ('damage', 'check_tiles'), [('garbage', False), ('truncated', True)]
)
def test_unreadable_tile(tmp_path: Path, damage: str, check_tiles: bool) -> None:
    # Errors while loading: a tile the header check does not see (truncated
    # pixel data), or any bad tile with the check off.
    root = copy_fixture(tmp_path)
    bad = root / 'images' / 'patch_6.tif'
    if damage == 'garbage':
        bad.write_bytes(b'not a tiff' * 64)
    else:
        bad.write_bytes(bad.read_bytes()[:2000])

    dm = make_dm(root, batch_size=12, check_tiles=check_tiles)
    dm.setup('predict')
    with pytest.raises(UnreadableTileError, match=r'patch_6\.tif'):
        next(iter(dm.predict_dataloader()))

    dm = make_dm(root, batch_size=12, skip_unreadable=True, check_tiles=check_tiles)
    dm.setup('predict')
    with pytest.warns(UnreadableTileWarning, match=r'patch_6\.tif'):
        raw = next(iter(dm.predict_dataloader()))
    assert raw['image'].shape == (11, 12, 32, 32)
    assert int(raw['skipped']) == 1
    out = transfer(dm, raw, 'predicting')
    assert out['image'].shape == (11, 13, 16, 16)
    assert 'skipped' not in out
    assert dm.skipped_tiles['predict'] == 1


def test_all_skipped_batch() -> None:
    collate = SkipUnreadableCollate((12, 32, 32))
    batch = collate([None, None])
    assert batch['image'].shape == (0, 12, 32, 32)
    assert batch['point'].shape == (0, 2)
    assert int(batch['skipped']) == 2
    for train in (True, False):
        aug = SatCLIPBatchAugmentation(crop_size=16, train=train)
        out = aug(batch)
        assert out['image'].shape == (0, 13, 16, 16)
        assert out['point'].shape == (0, 2)


def test_real_patches_through_datamodule() -> None:
    if not (REAL / 'index.csv').is_file():
        pytest.skip(f'real S2-100K sample patches not found in {REAL}')
    dm = S2100KDataModule(root=str(REAL), batch_size=2, crop_size=224)
    dm.setup('predict')
    raw = next(iter(dm.predict_dataloader()))
    assert raw['image'].shape == (2, 12, 256, 256)
    out = transfer(dm, raw, 'validating')
    assert out['image'].shape == (2, 13, 224, 224)
    assert torch.equal(out['image'][:, 10], torch.zeros(2, 224, 224))
    assert 0.01 < float(out['image'].max()) < 2.0  # reflectance
    torch.testing.assert_close(
        out['image'][:, :10], raw['image'][:, :10, 16:240, 16:240] / 10000
    )


class TinyModel(LightningModule):
    """Records the batches it sees after the datamodule's transfer hook."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(13 + 2, 1)
        self.shapes: list[tuple[str, tuple[int, ...]]] = []

    def _step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        self.shapes.append((stage, tuple(batch['image'].shape)))
        features = torch.cat([batch['image'].mean(dim=(2, 3)), batch['point']], 1)
        return self.layer(features).mean()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, 'train')

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._step(batch, 'val')

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_fit_with_trainer(tmp_path: Path) -> None:
    dm = make_dm(val_split_pct=0.25)
    model = TinyModel()
    trainer = Trainer(
        accelerator='cpu',
        fast_dev_run=True,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    assert ('train', (4, 13, 16, 16)) in model.shapes
    assert ('val', (3, 13, 16, 16)) in model.shapes


def test_host_memory_in_flight_is_checked_before_loading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import satclip_tg.datamodules.s2_100k as module
    from satclip_tg.resources import HostMemoryError

    s2_sample = 12 * 256 * 256 * 2 + 2 * 4  # uint16 tile and float32 point
    dm = make_dm(batch_size=8192, num_workers=16)
    assert dm.batches_in_flight() == 16 * 2 + 1
    assert dm.host_bytes_in_flight(s2_sample) == 8192 * s2_sample * 33  # 425 GB
    assert make_dm(num_workers=0).batches_in_flight() == 1

    sample = 12 * 32 * 32 * 2 + 8  # the fixture
    dm = make_dm(batch_size=4, num_workers=2, prefetch_factor=3)
    needed = 4 * sample * (2 * 3 + 1)
    monkeypatch.setattr(module, 'available_memory_bytes', lambda: needed - 1)
    with pytest.raises(HostMemoryError) as info:
        dm.setup('fit')
    message = str(info.value)
    assert 'batch_size 4' in message and 'num_workers 2 x prefetch_factor 3' in message
    assert 'Lower data.init_args.batch_size' in message
    assert dm.train_dataset is None  # failed before making any data set
    monkeypatch.setattr(module, 'available_memory_bytes', lambda: needed)
    dm.setup('fit')
    unchecked = make_dm(batch_size=4, check_host_memory=False)
    monkeypatch.setattr(module, 'available_memory_bytes', lambda: 1)
    unchecked.setup('fit')


def damage(root: Path, rows: list[int]) -> None:
    """Delete the tile of the first row, write garbage over the others."""
    (root / 'images' / f'patch_{rows[0]}.tif').unlink()
    for row in rows[1:]:
        (root / 'images' / f'patch_{row}.tif').write_bytes(b'not a tiff' * 64)


@pytest.mark.parametrize('stage', ['fit', 'validate', 'test', 'predict'])
def test_setup_reports_every_bad_tile(tmp_path: Path, stage: str) -> None:
    root = copy_fixture(tmp_path)
    damage(root, [2, 3, 8])
    dm = make_dm(root)
    with pytest.raises(TileCheckError) as info:
        dm.setup(stage)
    assert isinstance(info.value, UnreadableTileError)
    message = str(info.value)
    assert '3 bad row(s) (1 x missing file, 2 x unreadable header)' in message
    assert "row 2 'patch_2.tif'" in message
    assert "row 3 'patch_3.tif'" in message and "row 8 'patch_8.tif'" in message
    assert 'skip_unreadable: true' in message and 'check_tiles: false' in message
    assert info.value.report.bad_rows == [2, 3, 8]
    assert dm.train_dataset is None and dm.predict_dataset is None


def test_skip_unreadable_leaves_bad_tiles_out_of_the_same_split(
    tmp_path: Path,
) -> None:
    root = copy_fixture(tmp_path)
    bad = [2, 3, 8]
    damage(root, bad)
    dm = make_dm(root, skip_unreadable=True, val_split_pct=0.25)
    with pytest.warns(UnreadableTileWarning) as caught:
        dm.setup('fit')
    message = str(caught[0].message)
    assert '3 bad row(s) (1 x missing file, 2 x unreadable header)' in message
    assert 'left out of every split' in message
    # The split of all 12 rows, minus the bad ones: each good tile is in the
    # part it would be in without bad tiles.
    train, val = train_val_indices(12, 0.25, 0)
    assert isinstance(dm.train_dataset, Subset)
    assert isinstance(dm.val_dataset, Subset)
    assert list(dm.train_dataset.indices) == [i for i in train if i not in bad]
    assert list(dm.val_dataset.indices) == [i for i in val if i not in bad]
    batches = list(dm.train_dataloader())
    assert all(int(b['skipped']) == 0 for b in batches)  # left out, not skipped

    with pytest.warns(UnreadableTileWarning):
        dm.setup('predict')
    assert dm.predict_dataset is not None
    points = torch.cat([b['point'] for b in dm.predict_dataloader()])
    assert len(points) == 9
    index = pd.read_csv(root / 'index.csv').drop(index=bad)
    torch.testing.assert_close(
        points.double(),
        torch.tensor(index[['lon', 'lat']].to_numpy()),
        atol=1e-4,
        rtol=0,
    )


def test_skip_unreadable_with_a_bad_validation_split(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path)
    _, val = train_val_indices(12, 0.1, 0)
    damage(root, val)
    dm = make_dm(root, skip_unreadable=True)
    with (
        pytest.warns(UnreadableTileWarning),
        pytest.raises(ValueError, match='every tile of the validation split'),
    ):
        dm.setup('fit')


def test_every_tile_bad_fails_even_with_skip_unreadable(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path)
    for path in (root / 'images').iterdir():
        path.write_bytes(b'not a tiff' * 64)
    dm = make_dm(root, skip_unreadable=True)
    with pytest.raises(TileCheckError, match='12 x unreadable header'):
        dm.setup('fit')


def test_check_tiles_false_skips_the_header_check(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path)
    damage(root, [5])
    dm = make_dm(root, check_tiles=False, batch_size=12)
    dm.setup('predict')  # the missing tile is found only when loaded
    with pytest.raises(UnreadableTileError, match=r'patch_5\.tif'):
        next(iter(dm.predict_dataloader()))


def tiny_task(**kwargs: Any) -> SatCLIPTask:
    return SatCLIPTask(
        model='resnet18',
        in_channels=13,
        positional_encoding_args={'legendre_polys': 4},
        network_args={'hidden_dim': 16, 'num_hidden_layers': 1},
        embed_dim=8,
        **kwargs,
    )


def quick_trainer(tmp_path: Path) -> Trainer:
    return Trainer(
        accelerator='cpu',
        fast_dev_run=True,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )


def two_tiles(tmp_path: Path) -> Path:
    root = copy_fixture(tmp_path)
    index = pd.read_csv(root / 'index.csv')
    index.head(2).to_csv(root / 'index.csv', index=False)
    return root


@pytest.mark.parametrize(
    ('case', 'match'),
    [('batch_size', 'batch_size is 1'), ('one_tile', 'holds 1 tile per process')],
)
def test_batch_of_one_with_trainable_batchnorm_is_refused(
    tmp_path: Path, case: str, match: str
) -> None:
    if case == 'batch_size':
        dm = make_dm(batch_size=1)
    else:  # 2 tiles, 1 for validation: a training split of 1 tile
        dm = make_dm(two_tiles(tmp_path), batch_size=4, val_split_pct=0.5)
    task = tiny_task(freeze_backbone=False)
    with pytest.raises(ValueError, match=match) as info:
        quick_trainer(tmp_path).fit(task, datamodule=dm)
    message = str(info.value)
    assert 'BatchNorm' in message
    assert 'data.init_args.batch_size' in message
    assert 'model.init_args.freeze_backbone: true' in message


def test_batch_of_one_with_a_frozen_backbone_trains(tmp_path: Path) -> None:
    task = tiny_task(freeze_backbone=True)
    trainer = quick_trainer(tmp_path)
    trainer.fit(task, datamodule=make_dm(batch_size=1))
    assert trainer.state.finished


def test_batch_left_with_one_image_is_skipped() -> None:
    task = tiny_task(freeze_backbone=False)
    task.train()
    batch = {
        'image': torch.rand(1, 13, 16, 16),
        'point': torch.tensor([[10.0, 20.0]]),
        'skipped': torch.tensor(3),
    }
    with pytest.warns(RuntimeWarning, match='1 image.*others were unreadable'):
        assert task.training_step(batch, 0) is None
    assert task.image_encoder.training  # the probe restored the modes
    frozen = tiny_task(freeze_backbone=True)
    frozen.train()
    loss = frozen.training_step(batch, 0)
    assert loss is not None and not frozen.image_encoder.model.training


def test_batch_of_one_causes() -> None:
    def loader(size: int, batch_size: int, drop_last: bool = False) -> Any:
        return torch.utils.data.DataLoader(
            list(range(size)), batch_size=batch_size, drop_last=drop_last
        )

    assert _batch_of_one(loader(9, 1)) == 'data.init_args.batch_size is 1'
    assert _batch_of_one(loader(1, 4)) == 'the training split holds 1 tile per process'
    assert 'last batch of 1' in str(_batch_of_one(loader(9, 4)))
    assert _batch_of_one(loader(9, 4, drop_last=True)) is None
    assert _batch_of_one(loader(8, 4)) is None
    assert _batch_of_one(loader(2, 4)) is None

    class Stream(torch.utils.data.IterableDataset[int]):
        def __iter__(self) -> Any:
            return iter(range(3))

    assert _batch_of_one(torch.utils.data.DataLoader(Stream(), batch_size=1)) is None
