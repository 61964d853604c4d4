"""End-to-end runs of `satclip-tg fit` and `torchgeo fit` on the tiny fixture."""

import pathlib

import pytest
import torch

from satclip_tg.cli import main
from satclip_tg.tasks.satclip import CHECKPOINT_KEY

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = ROOT / 'tests' / 'data' / 's2_100k'
CONFIGS = sorted((ROOT / 'configs').glob('sh_*.yaml'))


def fast_args(tmp_path, crop_size: int) -> list[str]:
    return [
        '--trainer.fast_dev_run=true',
        '--trainer.accelerator=cpu',
        '--trainer.devices=1',
        '--trainer.precision=32-true',
        f'--trainer.default_root_dir={tmp_path}',
        f'--data.init_args.root={FIXTURE}',
        '--data.init_args.batch_size=4',
        '--data.init_args.num_workers=0',
        f'--data.init_args.crop_size={crop_size}',
    ]


@pytest.mark.parametrize('config', CONFIGS, ids=lambda path: path.stem)
def test_every_config_passes_fast_dev_run(config, tmp_path, offline_weights) -> None:
    text = config.read_text()
    assert 'S2100KDataModule' in text and 'SatCLIPPretraining' in text
    # The fixture tiles are 32 x 32: the ViT is built for that input size, and
    # its (mocked) pretrained position embeddings are resampled to match.
    args = ['fit', f'--config={config}', *fast_args(tmp_path, 32)]
    if 'vit' in config.stem:
        args.append('--model.init_args.model_args={"img_size": 32}')
    assert main(args) == 0


def test_short_real_run_lowers_the_loss_and_checkpoints(tmp_path) -> None:
    args = [
        'fit',
        f'--config={ROOT / "configs" / "sh_l10_resnet18.yaml"}',
        '--trainer.accelerator=cpu',
        '--trainer.devices=1',
        '--trainer.precision=32-true',
        '--trainer.max_epochs=25',
        '--trainer.log_every_n_steps=1',
        f'--trainer.default_root_dir={tmp_path}',
        '--trainer.logger=CSVLogger',
        f'--trainer.logger.save_dir={tmp_path}',
        '--model.init_args.weights=null',
        '--model.init_args.lr=0.003',
        '--model.init_args.network_args='
        '{"hidden_dim": 64, "num_hidden_layers": 2, "dropout": 0.0}',
        '--data.init_args.flips=false',
        '--data.init_args.coordinate_jitter=0.0',
        f'--data.init_args.root={FIXTURE}',
        '--data.init_args.batch_size=8',
        '--data.init_args.val_split_pct=0.25',
        '--data.init_args.crop_size=32',
        '--data.init_args.blur=false',
        '--data.init_args.num_workers=0',
    ]
    assert main(args) == 0
    metrics = (tmp_path / 'lightning_logs' / 'version_0' / 'metrics.csv').read_text()
    rows = [line.split(',') for line in metrics.splitlines()]
    column = rows[0].index('train_loss')
    losses = [float(row[column]) for row in rows[1:] if row[column]]
    assert len(losses) >= 20
    # Chance level for 8 pairs is ln(8) = 2.08; the pairs are learnt.
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3
    checkpoints = list(tmp_path.rglob('*.ckpt'))
    assert checkpoints
    checkpoint = torch.load(checkpoints[0], map_location='cpu', weights_only=True)
    assert (
        checkpoint[CHECKPOINT_KEY]['location_encoder']['config']['network'] == 'siren'
    )


def test_torchgeo_cli_accepts_the_task_and_datamodule(tmp_path) -> None:
    from torchgeo.main import main as torchgeo_main

    torchgeo_main(
        [
            'fit',
            '--model.class_path=satclip_tg.tasks.SatCLIPPretraining',
            '--model.init_args.in_channels=13',
            '--model.init_args.positional_encoding_args={"legendre_polys": 4}',
            '--model.init_args.network_args={"hidden_dim": 16, "num_hidden_layers": 1}',
            '--data.class_path=satclip_tg.datamodules.S2100KDataModule',
            *fast_args(tmp_path, 32),
        ]
    )


def test_plugin_component_names_work_in_yaml(tmp_path) -> None:
    config = tmp_path / 'wrap.yaml'
    config.write_text(
        """
model:
  class_path: SatCLIPPretraining
  init_args:
    model: resnet18
    in_channels: 13
    positional_encoding: wrap
    network: fcnet
    network_args: {hidden_dim: 16, num_residual_layers: 1}
    embed_dim: 16
data:
  class_path: S2100KDataModule
"""
    )
    assert main(['fit', f'--config={config}', *fast_args(tmp_path, 32)]) == 0


@pytest.mark.parametrize('config', CONFIGS, ids=lambda path: path.stem)
def test_live_configs_fit_one_node_with_8_gpus_and_1_tb(config) -> None:
    import yaml

    from satclip_tg.datamodules import S2100KDataModule

    document = yaml.safe_load(config.read_text())
    assert document['trainer']['devices'] == 8
    assert document['model']['init_args']['gather_distributed'] is True
    dm = S2100KDataModule(**document['data']['init_args'])
    assert 8 * dm.batch_size == 8192  # the released contrastive batch, gathered
    s2_sample = 12 * 256 * 256 * 2 + 8
    per_node = 8 * dm.host_bytes_in_flight(s2_sample)
    assert per_node < 0.25e12  # well inside 1 TB of host memory
    assert f'8 ranks {per_node / 1e9:.0f} GB' in ' '.join(config.read_text().split())
    crop = dm.crop_size
    gpu_batch = dm.batch_size * 13 * crop * crop * 4
    assert gpu_batch < 4e9  # float32 augmented batch, far below 80 GB
