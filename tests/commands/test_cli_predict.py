"""A released config end to end: TensorBoard map in fit, predict --output."""

import pathlib

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from satclip_tg.cli import main

ROOT = pathlib.Path(__file__).parents[2]
CONFIG = ROOT / 'configs' / 'sh_l10_resnet18.yaml'
FIXTURE = ROOT / 'tests' / 'data' / 's2_100k'


def _common(root: pathlib.Path, batch_size: int) -> list[str]:
    text = CONFIG.read_text()
    # No download: random backbone weights (under the key the config uses).
    key = 'backbone_weights' if 'backbone_weights:' in text else 'weights'
    return [
        f'--config={CONFIG}',
        '--trainer.accelerator=cpu',
        '--trainer.devices=1',
        '--trainer.precision=32-true',
        '--trainer.enable_progress_bar=false',
        f'--trainer.default_root_dir={root}',
        f'--model.init_args.{key}=null',
        '--model.init_args.network_args={"hidden_dim": 32, "num_hidden_layers": 1}',
        f'--data.init_args.root={FIXTURE}',
        '--data.init_args.num_workers=0',
        '--data.init_args.crop_size=32',
        f'--data.init_args.batch_size={batch_size}',
    ]


@pytest.fixture(scope='module')
def trained(tmp_path_factory) -> pathlib.Path:
    """One short epoch of the released config, with its default logger."""
    root = tmp_path_factory.mktemp('fit')
    args = [
        'fit',
        # 9 training tiles: one batch of 8 (the last, partial one is dropped);
        # 3 validation tiles: one batch.
        *_common(root, 8),
        '--trainer.max_epochs=1',
        '--trainer.num_sanity_val_steps=0',
        '--data.init_args.val_split_pct=0.25',
    ]
    assert main(args) == 0
    return root / 'lightning_logs' / 'version_0'


def test_released_config_logs_the_embedding_map_to_tensorboard(trained) -> None:
    # No logger is configured: Lightning's default, TensorBoard, is used and
    # the config's EmbeddingMapLogger draws into it.
    assert list(trained.glob('events.out.tfevents.*'))
    events = EventAccumulator(str(trained), size_guidance={'images': 0})
    events.Reload()
    assert 'val_loss' in events.Tags()['scalars']
    images = events.Images('embedding_map')
    assert [(image.height, image.width) for image in images] == [(90, 180)]


def test_predict_writes_one_parquet_of_every_tile(trained, tmp_path) -> None:
    output = tmp_path / 'emb.parquet'
    args = [
        'predict',
        *_common(tmp_path, 5),
        f'--ckpt_path={trained / "checkpoints" / "last.ckpt"}',
        f'--output={output}',
    ]
    assert main(args) == 0
    table = pq.read_table(output).to_pandas()
    index = pd.read_csv(FIXTURE / 'index.csv')
    # Every tile once, in the data set's order (one process, 3 batches).
    assert len(table) == len(index) == 12
    np.testing.assert_allclose(table['lon'], index['lon'], atol=1e-4)
    np.testing.assert_allclose(table['lat'], index['lat'], atol=1e-4)
    names = list(table.columns)
    assert names[:2] == ['lon', 'lat']
    assert names[2:258] == [f'emb_{i:03d}' for i in range(256)]
    assert names[258:] == [f'img_emb_{i:03d}' for i in range(256)]
    assert np.isfinite(table.iloc[:, 2:].to_numpy()).all()
    # Location embeddings differ from tile to tile.
    assert table[names[2:258]].drop_duplicates().shape[0] == 12
    # An existing output is refused before predicting (--overwrite replaces it).
    assert main(args) == 1


def test_predict_without_output_warns_that_nothing_is_written(tmp_path) -> None:
    args = ['predict', *_common(tmp_path, 4), '--trainer.fast_dev_run=true']
    with pytest.warns(UserWarning, match='without --output writes nothing'):
        assert main(args) == 0
