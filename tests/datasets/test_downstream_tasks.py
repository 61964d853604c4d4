"""Downstream Lightning tasks, the point-label datamodule and their YAML configs."""

import pathlib

import numpy as np
import pytest
import torch
import yaml

from satclip_tg.cli import main
from satclip_tg.datamodules import PointLabelDataModule
from satclip_tg.datamodules.points import read_point_csv
from satclip_tg.tasks import LocationClassificationTask, LocationRegressionTask

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / 'configs' / 'downstream').glob('*.yaml'))
TINY_ENCODER = {
    'positional_encoding_args': {'legendre_polys': 3},
    'network_args': {'hidden_dim': 16, 'num_hidden_layers': 1},
    'embed_dim': 8,
}


def write_csv(path, task_type, n=40, num_classes=3):
    rng = np.random.default_rng(0)
    lon = rng.uniform(-180, 180, n)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    if task_type == 'regression':
        labels = [f'{v:.4f}' for v in np.cos(np.radians(lat))]
    else:
        labels = [str(i % num_classes) for i in range(n)]
    lines = ['lon,lat,label'] + [
        f'{x:.4f},{y:.4f},{label}' for x, y, label in zip(lon, lat, labels, strict=True)
    ]
    path.write_text('\n'.join(lines) + '\n')
    return path


def test_read_point_csv_maps_names_to_classes(tmp_path):
    path = tmp_path / 'named.csv'
    path.write_text('lon,lat,label\n0,0,sea\n1,1,land\n2,2,sea\n')
    coords, labels, classes = read_point_csv(path, 'classification')
    assert classes == ('land', 'sea') and labels.tolist() == [1, 0, 1]
    assert coords.shape == (3, 2)
    path.write_text('lon,lat\n0,0\n')
    with pytest.raises(ValueError, match='label'):
        read_point_csv(path, 'regression')


def test_datamodule_uses_the_benchmark_folds(tmp_path):
    path = write_csv(tmp_path / 'r.csv', 'regression', n=50)
    module = PointLabelDataModule(
        path=str(path),
        task_type='regression',
        split='random',
        num_folds=5,
        fold=2,
        val_fraction=0.25,
        batch_size=8,
    )
    module.setup('fit')
    from satclip_tg.datasets.splits import random_kfold

    test_rows = random_kfold(50, 5, seed=0)[2].test
    coords, _, _ = read_point_csv(path, 'regression')
    torch.testing.assert_close(
        module.test_dataset.points,
        torch.as_tensor(coords[test_rows], dtype=torch.float32),
    )
    sizes = (
        len(module.train_dataset),
        len(module.val_dataset),
        len(module.test_dataset),
    )
    assert sizes == (30, 10, 10)
    train_labels = module.train_dataset.labels
    assert abs(float(train_labels.mean())) < 1e-5
    assert float(train_labels.std(unbiased=False)) == pytest.approx(1.0, abs=1e-5)
    batch = next(iter(module.train_dataloader()))
    assert batch['point'].shape[1] == 2 and batch['label'].dtype == torch.float32
    with pytest.raises(ValueError, match='exactly one'):
        PointLabelDataModule()
    with pytest.raises(ValueError, match='task_type'):
        PointLabelDataModule(path=str(path))
    bad = PointLabelDataModule(path=str(path), task_type='regression', fold=9)
    with pytest.raises(ValueError, match='fold'):
        bad.setup('fit')


def test_tasks_train_a_probe_on_a_frozen_encoder():
    task = LocationClassificationTask(num_classes=3, probe='linear', **TINY_ENCODER)
    frozen = {n for n, p in task.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith('encoder.') for n in frozen)
    task.train()
    assert not task.encoder.training and task.head.training
    batch = {
        'point': torch.tensor([[0.0, 0.0], [10.0, 20.0]]),
        'label': torch.tensor([0, 2]),
    }
    loss = task.training_step(batch, 0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert task.predict_step(batch, 0).tolist()[0] in (0, 1, 2)
    tuned = LocationRegressionTask(freeze_encoder=False, **TINY_ENCODER)
    assert all(p.requires_grad for p in tuned.parameters())
    with pytest.raises(ValueError, match='num_classes'):
        LocationClassificationTask(num_classes=1)


def test_there_is_a_config_per_builtin_task():
    from satclip_tg.datasets.downstream import BUILTIN_TASKS

    assert sorted(p.stem for p in CONFIGS) == sorted(BUILTIN_TASKS)


@pytest.mark.parametrize('config', CONFIGS, ids=lambda path: path.stem)
def test_every_downstream_config_passes_fast_dev_run(config, tmp_path):
    settings = yaml.safe_load(config.read_text())
    init = settings['model']['init_args']
    regression = settings['model']['class_path'].endswith('LocationRegressionTask')
    task_type = 'regression' if regression else 'classification'
    assert settings['data']['init_args']['task'] == config.stem
    path = write_csv(
        tmp_path / 'tiny.csv', task_type, num_classes=min(init.get('num_classes', 2), 3)
    )
    arguments = [
        'fit',
        f'--config={config}',
        '--trainer.fast_dev_run=true',
        '--trainer.accelerator=cpu',
        f'--trainer.default_root_dir={tmp_path}',
        '--data.init_args.task=null',
        f'--data.init_args.path={path}',
        f'--data.init_args.task_type={task_type}',
        '--data.init_args.batch_size=8',
        '--data.init_args.val_fraction=0.25',
        '--model.init_args.positional_encoding_args={"legendre_polys": 3}',
        '--model.init_args.network_args={"hidden_dim": 16, "num_hidden_layers": 1}',
        '--model.init_args.embed_dim=8',
    ]
    assert main(arguments) == 0
