"""The released configs come from one source, and configs derive what they can."""

import importlib.util
import pathlib

import lightning.pytorch as pl
import numpy as np
import torch

from satclip_tg.cli import main
from satclip_tg.datamodules import PointLabelDataModule
from satclip_tg.tasks import LocationClassificationTask

ROOT = pathlib.Path(__file__).resolve().parents[1]
GENERATOR = ROOT / 'scripts' / 'generate_configs.py'
TINY_ENCODER = {
    'positional_encoding_args': {'legendre_polys': 3},
    'network_args': {'hidden_dim': 16, 'num_hidden_layers': 1},
    'embed_dim': 8,
}


def load_generator():
    spec = importlib.util.spec_from_file_location('generate_configs', GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_csv(path, n=60, num_classes=4):
    rng = np.random.default_rng(0)
    lon = rng.uniform(-180, 180, n)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    rows = enumerate(zip(lon, lat, strict=True))
    lines = ['lon,lat,label']
    lines += [f'{x:.4f},{y:.4f},{i % num_classes}' for i, (x, y) in rows]
    path.write_text('\n'.join(lines) + '\n')
    return path


def test_released_configs_equal_the_generated_ones():
    generated = load_generator().generate()
    committed = sorted((ROOT / 'configs').glob('sh_*.yaml'))
    assert sorted(generated) == committed
    for path, text in generated.items():
        assert path.read_text() == text, (
            f'{path.name} differs from scripts/generate_configs.py: edit the '
            'generator and run it instead of editing the file'
        )


def test_generated_comments_carry_the_variant_arithmetic():
    generator = load_generator()
    vit = generator.render(40, 'vit')
    assert '(L = 40, 1600 features)' in vit and 'crop_size: 224' in vit
    assert '1024 x 13 x 224 x 224 float32 =\n#     2.67 GB' in vit
    resnet50 = generator.render(10, 'resnet50')
    assert '6.6 GB of features' in resnet50 and '28 GB float32 batch' in resnet50
    assert 'legendre_polys: 10' in resnet50


def test_downstream_configs_leave_num_classes_to_the_data():
    for config in (ROOT / 'configs' / 'downstream').glob('*.yaml'):
        assert 'num_classes:' not in config.read_text().split('\nmodel:')[1]


def test_num_classes_is_read_from_the_datamodule(tmp_path):
    path = write_csv(tmp_path / 'four.csv')
    data = PointLabelDataModule(
        path=str(path), task_type='classification', split='random', batch_size=8
    )
    task = LocationClassificationTask(probe='linear', **TINY_ENCODER)
    trainer = pl.Trainer(
        accelerator='cpu',
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(task, datamodule=data)
    assert task.hparams['num_classes'] == 4
    assert task(torch.zeros(2, 2)).shape == (2, 4)
    checkpoint = tmp_path / 'probe.ckpt'
    trainer.save_checkpoint(checkpoint)
    restored = LocationClassificationTask.load_from_checkpoint(checkpoint)
    assert restored(torch.zeros(2, 2)).shape == (2, 4)


def test_country_config_runs_without_a_class_count(tmp_path):
    path = write_csv(tmp_path / 'tiny.csv', num_classes=3)
    arguments = [
        'fit',
        f'--config={ROOT / "configs" / "downstream" / "country.yaml"}',
        '--trainer.fast_dev_run=true',
        '--trainer.accelerator=cpu',
        f'--trainer.default_root_dir={tmp_path}',
        '--data.init_args.task=null',
        f'--data.init_args.path={path}',
        '--data.init_args.task_type=classification',
        '--data.init_args.batch_size=8',
        '--model.init_args.positional_encoding_args={"legendre_polys": 3}',
        '--model.init_args.network_args={"hidden_dim": 16, "num_hidden_layers": 1}',
        '--model.init_args.embed_dim=8',
    ]
    assert main(arguments) == 0
