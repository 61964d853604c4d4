"""TorchGeo's names for the pretraining task and its arguments, and the old ones."""

import json
import pathlib
import warnings
from typing import Any

import lightning
import pytest
import timm
import torch
import yaml

from satclip_tg.cli import lightning_cli
from satclip_tg.demo.pipeline import _root_arguments
from satclip_tg.features.manifest import FeatureCacheManifest
from satclip_tg.pretrained import load_location_encoder, load_satclip
from satclip_tg.renamed_arguments import NEW_NAMES, OLD_NAMES, task_hparam
from satclip_tg.tasks import SatCLIPPretraining, SatCLIPTask

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = pathlib.Path(__file__).parents[1] / 'data' / 's2_100k'
TINY: dict[str, Any] = {
    'in_channels': 4,
    'positional_encoding_args': {'legendre_polys': 3},
    'network_args': {'hidden_dim': 8, 'num_hidden_layers': 1},
    'embed_dim': 8,
}
OLD_CLASS_PATH = 'satclip_tg.tasks.SatCLIPTask'
NEW_CLASS_PATH = 'satclip_tg.tasks.SatCLIPPretraining'


def write_checkpoint(
    task: SatCLIPPretraining, path: pathlib.Path, hparams: dict[str, Any]
) -> pathlib.Path:
    """Write a checkpoint as Trainer.save_checkpoint lays it out."""
    checkpoint = {
        'epoch': 0,
        'global_step': 1,
        'pytorch-lightning_version': lightning.__version__,
        'state_dict': task.state_dict(),
        'hyper_parameters': hparams,
    }
    task.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


def as_before_the_rename(hparams: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters as a checkpoint saved before the rename holds them."""
    renamed = {OLD_NAMES.get(key, key): value for key, value in hparams.items()}
    del renamed['backbone_args']  # absent from the oldest checkpoints
    return renamed


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    state = b.state_dict()
    for key, value in a.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_the_old_class_name_is_the_same_class_without_a_warning() -> None:
    from satclip_tg.tasks.satclip import SatCLIPTask as module_level

    assert SatCLIPTask is SatCLIPPretraining is module_level
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        task = SatCLIPTask(**TINY)
    assert type(task).__name__ == 'SatCLIPPretraining'


def test_new_names_are_used_and_stored_alone(tmp_path: pathlib.Path) -> None:
    source = timm.create_model('resnet18', in_chans=4, num_classes=10)
    weights = tmp_path / 'backbone.pth'
    torch.save({f'model.{k}': v for k, v in source.state_dict().items()}, weights)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        task = SatCLIPPretraining(
            **TINY,
            model='resnet50',
            weights=None,
            model_args={'drop_rate': 0.25},
            gather_distributed=False,
        )
        loaded = SatCLIPPretraining(**TINY, weights=str(weights))
    assert task.image_encoder.model.num_features == 2048
    assert task.image_encoder.model.drop_rate == 0.25
    assert task.criterion.gather_across_processes is False
    torch.testing.assert_close(
        loaded.image_encoder.model.conv1.weight, source.conv1.weight
    )
    for hparams in (task.hparams, task.hparams_initial):
        assert set(NEW_NAMES.values()) <= set(hparams)
        assert not set(NEW_NAMES) & set(hparams)
    assert task.hparams['model'] == 'resnet50'


@pytest.mark.parametrize(
    ('old', 'value', 'check'),
    [
        ('backbone', 'resnet50', lambda t: t.image_encoder.model.num_features == 2048),
        (
            'backbone_args',
            {'drop_rate': 0.25},
            lambda t: t.image_encoder.model.drop_rate == 0.25,
        ),
        (
            'gather_negatives',
            False,
            lambda t: t.criterion.gather_across_processes is False,
        ),
    ],
)
def test_each_old_name_still_works_and_warns_naming_the_new(old, value, check) -> None:
    new = NEW_NAMES[old]
    with pytest.warns(
        FutureWarning, match=rf'^{old} is deprecated .*: use {new} '
    ) as w:
        task = SatCLIPPretraining(**TINY, **{old: value})
    # The warning points at the line that passed the old name.
    assert [record.filename for record in w] == [__file__]
    assert check(task)
    assert task.hparams[new] == value and old not in task.hparams


def test_old_backbone_weights_still_load(tmp_path: pathlib.Path) -> None:
    source = timm.create_model('resnet18', in_chans=4, num_classes=10)
    path = tmp_path / 'backbone.pth'
    torch.save({f'model.{k}': v for k, v in source.state_dict().items()}, path)
    with pytest.warns(FutureWarning, match='backbone_weights is deprecated'):
        task = SatCLIPPretraining(**TINY, backbone_weights=str(path))
    torch.testing.assert_close(
        task.image_encoder.model.conv1.weight, source.conv1.weight
    )
    assert task.hparams['weights'] == str(path)


def test_an_old_and_a_new_name_that_disagree_are_refused() -> None:
    with pytest.raises(ValueError, match="backbone='resnet18' and model='resnet50'"):
        SatCLIPPretraining(**TINY, model='resnet50', backbone='resnet18')
    with pytest.raises(ValueError, match='give gather_distributed only'):
        SatCLIPPretraining(**TINY, gather_distributed=False, gather_negatives=True)
    # The same value under both names is no conflict.
    with pytest.warns(FutureWarning, match='backbone is deprecated'):
        task = SatCLIPPretraining(**TINY, model='resnet50', backbone='resnet50')
    assert task.hparams['model'] == 'resnet50'


def yaml_config(path: pathlib.Path, class_path: str, **init_args: Any) -> pathlib.Path:
    config = {
        'model': {'class_path': class_path, 'init_args': {**TINY, **init_args}},
        'data': {
            'class_path': 'satclip_tg.datamodules.S2100KDataModule',
            'init_args': {'root': str(FIXTURE), 'batch_size': 4, 'crop_size': 16},
        },
        'trainer': {'accelerator': 'cpu', 'devices': 1, 'logger': False},
    }
    config['model']['init_args']['in_channels'] = 13
    path.write_text(yaml.safe_dump(config))
    return path


def test_old_names_still_work_from_yaml(tmp_path: pathlib.Path) -> None:
    config = yaml_config(
        tmp_path / 'old.yaml',
        OLD_CLASS_PATH,
        backbone='resnet50',
        backbone_weights=None,
        gather_negatives=False,
    )
    with pytest.warns(FutureWarning) as w:
        cli = lightning_cli([f'--config={config}'], run=False)
    messages = {str(record.message).split(' is deprecated')[0] for record in w}
    assert {'backbone', 'gather_negatives'} <= messages
    task = cli.model
    assert isinstance(task, SatCLIPPretraining)
    assert task.image_encoder.model.num_features == 2048
    assert task.criterion.gather_across_processes is False
    # LightningCLI stores its parsed config as the hyperparameters: the new
    # names hold the values given under the old ones, which are dropped.
    for hparams in (task.hparams, task.hparams_initial):
        assert hparams['model'] == 'resnet50' and hparams['gather_distributed'] is False
        assert not set(NEW_NAMES) & set(hparams)


def test_an_old_and_a_new_name_that_disagree_in_yaml_are_refused(
    tmp_path: pathlib.Path,
) -> None:
    config = yaml_config(tmp_path / 'new.yaml', NEW_CLASS_PATH, weights=None)
    with pytest.raises(ValueError, match='give model only'):
        lightning_cli(
            [
                f'--config={config}',
                '--model.init_args.model=resnet50',
                '--model.init_args.backbone=resnet18',
            ],
            run=False,
        )


@pytest.fixture(scope='module')
def cli_task() -> SatCLIPPretraining:
    """A task built by LightningCLI from a config that names the new class."""
    folder = pathlib.Path(__file__).parents[1] / 'data'
    config = {
        'model': {'class_path': 'SatCLIPPretraining', 'init_args': {**TINY}},
        'data': {
            'class_path': 'S2100KDataModule',
            'init_args': {'root': str(folder / 's2_100k'), 'batch_size': 4},
        },
        'trainer': {'accelerator': 'cpu', 'devices': 1, 'logger': False},
    }
    cli = lightning_cli([f'--config={json.dumps(config)}'], run=False)
    task: SatCLIPPretraining = cli.model
    dumped = yaml.safe_load(cli.parser.dump(cli.config))
    assert dumped['model']['class_path'] == NEW_CLASS_PATH
    assert task.hparams['_class_path'] == NEW_CLASS_PATH
    return task.eval()


@pytest.mark.parametrize('loader', [SatCLIPPretraining, SatCLIPTask])
@pytest.mark.parametrize('saved', ['new', 'old'])
def test_checkpoints_of_both_class_paths_and_names_load(
    cli_task: SatCLIPPretraining, tmp_path: pathlib.Path, loader: type, saved: str
) -> None:
    hparams = dict(cli_task.hparams)
    if saved == 'old':
        hparams = as_before_the_rename(hparams)
        hparams['_class_path'] = OLD_CLASS_PATH
    path = write_checkpoint(cli_task, tmp_path / f'{saved}.ckpt', hparams)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        task = loader.load_from_checkpoint(path, map_location='cpu')
    renamed = [r for r in w if issubclass(r.category, FutureWarning)]
    assert bool(renamed) == (saved == 'old')
    assert isinstance(task, SatCLIPPretraining)
    assert task.hparams['model'] == 'resnet18' and 'backbone' not in task.hparams
    assert_same_weights(cli_task, task)


def test_old_checkpoints_load_quietly_in_the_loaders(
    cli_task: SatCLIPPretraining, tmp_path: pathlib.Path
) -> None:
    hparams = as_before_the_rename(dict(cli_task.hparams))
    # A weights name would need a download (sockets are disabled): the
    # loader must clear it under its old name too.
    hparams['backbone_weights'] = 'ResNet18_Weights.SENTINEL2_ALL_MOCO'
    path = write_checkpoint(cli_task, tmp_path / 'old.ckpt', hparams)
    with warnings.catch_warnings():
        warnings.simplefilter('error', FutureWarning)
        task = load_satclip(path)
        encoder = load_location_encoder(path)
    assert_same_weights(cli_task, task)
    points = torch.tensor([[10.0, 20.0], [-120.0, -45.0]])
    with torch.no_grad():
        assert torch.equal(encoder(points), cli_task.location_encoder(points))


def test_feature_cache_reads_both_names() -> None:
    manifest = FeatureCacheManifest(
        backbone='resnet18',
        backbone_weights=None,
        backbone_args={},
        in_channels=13,
        backbone_sha256='0' * 64,
        feature_dim=512,
        views=1,
        view_seed=0,
        dtype='float16',
        tiles=1,
        shard_size=1,
        index_sha256='0' * 64,
        data={},
        satclip_tg_version='0',
    )
    new = {'model': 'resnet18', 'weights': None, 'model_args': None, 'in_channels': 13}
    old = {'backbone': 'resnet18', 'backbone_weights': None, 'in_channels': 13}
    assert manifest.model_differences(new) == []
    assert manifest.model_differences(old) == []
    assert manifest.model_differences({**new, 'model': 'resnet50'}) == [
        "model: cache 'resnet18', task 'resnet50'"
    ]
    assert task_hparam(old, 'model_args', {}) == {}


@pytest.mark.parametrize('key', ['model_args', 'backbone_args'])
def test_demo_points_patches_under_the_name_the_config_uses(
    tmp_path: pathlib.Path, key: str
) -> None:
    config = tmp_path / 'demo.yaml'
    model_args = {'num_filters': 8, 'patches_from': 'elsewhere'}
    config.write_text(yaml.safe_dump({'model': {'init_args': {key: model_args}}}))
    arguments = _root_arguments(config, '/data/here')
    expected = {**model_args, 'patches_from': '/data/here'}
    assert arguments[1] == f'--model.init_args.{key}={json.dumps(expected)}'


def test_released_configs_use_the_new_names() -> None:
    for path in sorted((ROOT / 'configs').glob('*.yaml')):
        model = yaml.safe_load(path.read_text()).get('model') or {}
        if 'SatCLIP' not in str(model.get('class_path')):
            continue
        assert model['class_path'] == NEW_CLASS_PATH, path.name
        assert not set(NEW_NAMES) & set(model['init_args']), path.name
