"""TorchGeo data-module conventions of S2100KDataModule (issue #14, item 5).

Dataset keyword arguments and per-sample ``transforms`` pass through; the
count of unreadable tiles stays out of the batches the model sees; ``plot``
works for any band count; per-band ``mean``/``std`` normalisation.
"""

import shutil
import sys
from pathlib import Path
from typing import Any

import matplotlib
import pytest
import torch
import yaml
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.demos.boring_classes import BoringModel
from matplotlib.figure import Figure
from torch import Tensor
from torchgeo.datamodules import BaseDataModule
from torchgeo.datasets.utils import Sample, unbind_samples

from satclip_tg.cli import main
from satclip_tg.datamodules import S2100KDataModule, SatCLIPBatchAugmentation
from satclip_tg.datasets import SatCLIPImageryDataset, UnreadableTileWarning
from satclip_tg.features import FeatureCacheManifest
from satclip_tg.tasks import SatCLIPTask
from satclip_tg.transforms.augmentation import centre_views

matplotlib.use('Agg')

FIXTURE = Path(__file__).parents[1] / 'data' / 's2_100k'
# Per-band statistics of the 12 bands after scale=10000 (made up, all differ).
MEAN = [0.01 * (band + 1) for band in range(12)]
STD = [0.5 + 0.1 * band for band in range(12)]


def add_one(sample: Sample) -> Sample:
    """A per-sample transform, importable by LightningCLI."""
    sample['image'] = sample['image'] + 1
    return sample


def make_dm(root: Path = FIXTURE, **kwargs: Any) -> S2100KDataModule:
    defaults: dict[str, Any] = {'batch_size': 12, 'crop_size': 16}
    return S2100KDataModule(root=str(root), **{**defaults, **kwargs})


def attach(dm: S2100KDataModule, stage: str) -> None:
    dm.trainer = Trainer(accelerator='cpu', logger=False, enable_progress_bar=False)
    setattr(dm.trainer, stage, True)


def truncated_tile(tmp_path: Path) -> Path:
    # Header intact (the setup check passes), pixel data cut: fails on load.
    root = tmp_path / 'data'
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns('*.py'))
    bad = root / 'images' / 'patch_6.tif'
    bad.write_bytes(bad.read_bytes()[:2000])
    return root


# -- 1. dataset kwargs and transforms --------------------------------------


def test_transforms_and_kwargs_reach_the_dataset() -> None:
    plain = make_dm()
    plain.setup('predict')
    raw = next(iter(plain.predict_dataloader()))
    dm = make_dm(transforms=add_one, mode='both')
    assert dm.kwargs['transforms'] is add_one and dm.kwargs['mode'] == 'both'
    dm.setup('predict')
    dataset = dm.predict_dataset
    assert isinstance(dataset, SatCLIPImageryDataset) and dataset.transforms is add_one
    batch = next(iter(dm.predict_dataloader()))
    assert batch['image'].dtype == torch.float32  # float32 for transforms
    torch.testing.assert_close(batch['image'], raw['image'].float() + 1)
    # Host memory is counted at float32 with transforms.
    assert dataset.sample_bytes == 12 * 32 * 32 * 4 + 8


def test_unknown_dataset_kwargs_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\['colour'\].*takes \['root'"):
        make_dm(colour='red')
    with pytest.raises(ValueError, match="mode must be 'both'"):
        make_dm(mode='points')


def test_lightning_cli_yaml_with_transforms_and_dict_kwargs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / 'data.yaml'
    config.write_text(
        yaml.safe_dump(
            {
                'data': {
                    'class_path': 'satclip_tg.datamodules.S2100KDataModule',
                    'init_args': {
                        'root': str(FIXTURE),
                        'crop_size': 16,
                        'transforms': f'{__name__}.add_one',
                        'mean': MEAN,
                        'std': STD,
                    },
                    'dict_kwargs': {'mode': 'both'},
                },
                'trainer': {'logger': False, 'default_root_dir': str(tmp_path)},
            }
        )
    )
    monkeypatch.setattr(sys, 'argv', ['satclip-tg'])
    cli = LightningCLI(
        BoringModel,
        BaseDataModule,
        subclass_mode_data=True,
        run=False,
        args=['--config', str(config)],
    )
    dm = cli.datamodule
    assert isinstance(dm, S2100KDataModule)
    assert dm.transforms is add_one and dm.kwargs['transforms'] is add_one
    assert dm.kwargs['mode'] == 'both'
    assert dm.band_mean == tuple(MEAN) and dm.band_std == tuple(STD)


# -- 2. the skipped-tile count out of the batch ----------------------------


def test_batches_reaching_the_model_are_plain_samples(tmp_path: Path) -> None:
    dm = make_dm(truncated_tile(tmp_path), skip_unreadable=True)
    dm.setup('predict')
    with pytest.warns(UnreadableTileWarning, match=r'patch_6\.tif'):
        raw = next(iter(dm.predict_dataloader()))
    assert int(raw['skipped']) == 1  # metadata of the loader's batch
    attach(dm, 'predicting')
    # Lightning's order: on_before_batch_transfer, the copy, on_after.
    batch = dm.on_after_batch_transfer(dm.on_before_batch_transfer(raw, 0), 0)
    assert set(batch) == {'image', 'point'}
    samples = unbind_samples(batch)
    assert len(samples) == 11 and set(samples[0]) == {'image', 'point'}
    assert samples[0]['image'].shape == (13, 16, 16)
    assert dm.skipped_tiles['predict'] == 1
    assert dm.take_skipped_tiles('predict') == 1
    assert dm.take_skipped_tiles('predict') == 0  # taken: reset
    with pytest.raises(ValueError, match='split must be one of'):
        dm.take_skipped_tiles('training')


def test_skipped_tile_is_counted_and_logged_in_training(tmp_path: Path) -> None:
    seen: list[set[str]] = []

    class Recording(SatCLIPTask):
        def training_step(self, batch: dict[str, Tensor], *args: Any) -> Any:
            seen.append(set(batch))
            return super().training_step(batch, *args)

    task = Recording(
        in_channels=13,
        positional_encoding_args={'legendre_polys': 4},
        network_args={'hidden_dim': 16, 'num_hidden_layers': 1},
        embed_dim=8,
    )
    dm = make_dm(truncated_tile(tmp_path), skip_unreadable=True, val_split_pct=0.0)
    trainer = Trainer(
        accelerator='cpu',
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with (
        pytest.warns(
            RuntimeWarning, match='1 unreadable tiles were skipped in epoch 0'
        ),
        pytest.warns(UnreadableTileWarning),
    ):
        trainer.fit(task, datamodule=dm)
    assert seen == [{'image', 'point'}]
    assert float(trainer.callback_metrics['skipped_tiles']) == 1.0
    assert dm.skipped_tiles['train'] == 0  # taken by the task at epoch end


# -- 3. plot for any band count --------------------------------------------


def sample_of(bands: int) -> Sample:
    image = torch.arange(bands * 8 * 8, dtype=torch.float32).reshape(bands, 8, 8)
    return {'image': image, 'point': torch.tensor([12.5, -3.25])}


@pytest.mark.parametrize(
    ('bands', 'shown'), [(12, (3, 2, 1)), (13, (3, 2, 1)), (3, (0, 1, 2)), (1, (0,))]
)
def test_plot_defaults_for_any_band_count(bands: int, shown: tuple[int, ...]) -> None:
    dataset = SatCLIPImageryDataset(str(FIXTURE))
    sample = sample_of(bands)
    fig = dataset.plot(sample, suptitle='a tile')
    try:
        assert isinstance(fig, Figure)
        ax = fig.axes[0]
        assert ax.get_title() == '(12.5000, -3.2500)'
        assert fig.get_suptitle() == 'a tile'
        array = ax.images[0].get_array()
        assert array is not None
        if len(shown) == 3:
            assert array.shape == (8, 8, 3)
            # Red is the band of the highest values among the shown ones:
            # the stretch keeps the order of the bands.
            means = [float(array[..., c].mean()) for c in range(3)]
            assert (means[0] > means[1] > means[2]) == (shown[0] > shown[2])
        else:
            assert array.shape == (8, 8)
            assert ax.images[0].get_cmap().name == 'gray'
    finally:
        matplotlib.pyplot.close(fig)


def test_plot_rgb_bands_override_and_errors() -> None:
    dataset = SatCLIPImageryDataset(str(FIXTURE))
    fig = dataset.plot(sample_of(12), show_titles=False, rgb_bands=[7, 3, 2])
    assert fig.axes[0].get_title() == ''
    matplotlib.pyplot.close(fig)
    fig = dataset.plot(sample_of(5), rgb_bands=[4])
    assert fig.axes[0].images[0].get_array().shape == (8, 8)  # type: ignore[union-attr]
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match=r'band\(s\) \[3\].*has 3 band\(s\)'):
        dataset.plot(sample_of(3), rgb_bands=(0, 1, 3))
    with pytest.raises(ValueError, match='3 band indices'):
        dataset.plot(sample_of(3), rgb_bands=(0, 1))
    with pytest.raises(ValueError, match='unbind_samples'):
        dataset.plot({'image': torch.zeros(2, 3, 8, 8)})


def test_datamodule_plot_after_any_setup() -> None:
    dm = make_dm()
    assert dm.plot(sample_of(12)) is None  # no data set yet
    dm.setup('predict')
    attach(dm, 'predicting')
    raw = next(iter(dm.predict_dataloader()))
    batch = dm.on_after_batch_transfer(dm.on_before_batch_transfer(raw, 0), 0)
    fig = dm.plot(unbind_samples(batch)[0], rgb_bands=(3, 2, 1))
    assert isinstance(fig, Figure)
    shown = fig.axes[0].images[0].get_array()
    assert shown is not None and shown.shape == (16, 16, 3)
    matplotlib.pyplot.close(fig)


# -- 4. per-band mean/std normalisation ------------------------------------


def test_normalisation_is_per_input_band_after_scale() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 10000, (3, 12, 20, 20), generator=generator)
    images = images.to(torch.uint16)
    aug = SatCLIPBatchAugmentation(
        crop_size=16, train=False, scale=10000.0, mean=MEAN, std=STD
    )
    out = aug.render(images, centre_views(3, 20, 20, 16))
    crop = images[:, :, 2:18, 2:18].float() / 10000
    mean, std = torch.tensor(MEAN)[:, None, None], torch.tensor(STD)[:, None, None]
    expected = (crop - mean) / std
    torch.testing.assert_close(out[:, :10], expected[:, :10])
    torch.testing.assert_close(out[:, 11:], expected[:, 10:])
    assert torch.equal(out[:, 10], torch.zeros(3, 16, 16))  # B10 stays zero
    assert 'mean=' in repr(aug)
    with pytest.raises(ValueError, match='12 values, but the images have 11 bands'):
        aug.render(images[:, :11], centre_views(3, 20, 20, 16))


@pytest.mark.parametrize(
    ('mean', 'std', 'match'),
    [
        (MEAN, None, 'give both mean and std'),
        (MEAN, STD[:3], '12 mean'),
        (MEAN, [0.0] * 12, 'std must hold finite numbers > 0'),
        ([float('nan')] * 12, STD, 'mean must hold finite numbers'),
    ],
)
def test_bad_normalisation_is_refused(
    mean: list[float] | None, std: list[float] | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        make_dm(mean=mean, std=std)


def test_normalisation_band_count_is_checked_at_setup() -> None:
    dm = make_dm(mean=MEAN[:3], std=STD[:3], insert_zero_b10=False)
    with pytest.raises(ValueError, match=r'3 values, but the images in .* have 12'):
        dm.setup('predict')
    # TorchGeo's description of the normalisation: per-band tensors.
    assert torch.equal(dm.mean, torch.tensor(MEAN[:3]))


def cache_config(path: Path, **data: Any) -> Path:
    config = {
        'seed_everything': 0,
        'trainer': {'accelerator': 'cpu', 'devices': 1, 'precision': '32-true'},
        'model': {
            'class_path': 'satclip_tg.tasks.SatCLIPTask',
            'init_args': {
                'in_channels': 13,
                'positional_encoding_args': {'legendre_polys': 4},
                'network_args': {'hidden_dim': 16, 'num_hidden_layers': 1},
                'embed_dim': 8,
            },
        },
        'data': {
            'class_path': 'satclip_tg.datamodules.S2100KDataModule',
            'init_args': {'root': str(FIXTURE), 'batch_size': 4, 'crop_size': 16}
            | data,
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_feature_cache_records_normalisation_and_refuses_another(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / 'features'
    args = ['cache-features', '--output', str(output), '--views', '1']
    normalised = cache_config(tmp_path / 'norm.yaml', mean=MEAN, std=STD)
    assert main([*args, '--config', str(normalised)]) == 0
    data = FeatureCacheManifest.read(output).data
    assert data['mean'] == MEAN and data['std'] == STD
    capsys.readouterr()

    plain = cache_config(tmp_path / 'plain.yaml')
    assert main([*args, '--config', str(plain)]) == 1
    message = capsys.readouterr().err
    assert 'made with other settings' in message and "'mean': [0.01" in message
    # Without normalisation the manifest has no mean/std entries, as before.
    assert main([*args, '--config', str(plain), '--overwrite']) == 0
    assert 'mean' not in FeatureCacheManifest.read(output).data


def test_feature_cache_refuses_per_sample_transforms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = cache_config(tmp_path / 't.yaml', transforms=f'{__name__}.add_one')
    output = tmp_path / 'features'
    args = ['--output', str(output), '--views', '1']
    assert main(['cache-features', '--config', str(config), *args]) == 1
    assert 'does not support per-sample transforms' in capsys.readouterr().err
    assert not output.exists()
