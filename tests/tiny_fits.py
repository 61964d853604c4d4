"""A tiny SatCLIP pretraining run on the 12-tile S2-100K fixture, for tests.

`fit_tiny` trains a small task for one step (``fast_dev_run``) with the
S2-100K data module and saves the checkpoint with ``Trainer.save_checkpoint``,
so that the checkpoint is what a real run writes, model card included.
"""

import pathlib
from typing import Any

import lightning.pytorch as pl

from satclip_tg.datamodules import S2100KDataModule
from satclip_tg.tasks import SatCLIPPretraining

FIXTURE = pathlib.Path(__file__).parent / 'data' / 's2_100k'
TINY_TASK: dict[str, Any] = {
    'model': 'resnet18',
    'in_channels': 13,
    'positional_encoding_args': {'legendre_polys': 3},
    'network_args': {'hidden_dim': 8, 'num_hidden_layers': 2},
    'embed_dim': 8,
}


def fit_tiny(folder: pathlib.Path) -> pathlib.Path:
    """Fit a tiny task for one step and save its checkpoint in ``folder``.

    Args:
        folder: Where ``tiny.ckpt`` goes.

    Returns:
        The checkpoint path.
    """
    pl.seed_everything(0)
    task = SatCLIPPretraining(**TINY_TASK)
    datamodule = S2100KDataModule(
        root=str(FIXTURE), batch_size=4, crop_size=16, val_split_pct=0.25
    )
    trainer = pl.Trainer(
        accelerator='cpu',
        fast_dev_run=True,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=folder,
    )
    trainer.fit(task, datamodule=datamodule)
    path = folder / 'tiny.ckpt'
    trainer.save_checkpoint(path)
    return path
