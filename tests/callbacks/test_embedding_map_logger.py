"""EmbeddingMapLogger: the PCA map of the location encoder in TensorBoard."""

import logging

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

import satclip_tg
from satclip_tg.callbacks import EmbeddingMapLogger


class _Task(pl.LightningModule):
    """The smallest module with a location encoder and a validation loop."""

    def __init__(self) -> None:
        super().__init__()
        self.location_encoder = satclip_tg.build_location_encoder(
            'sphericalharmonics',
            'siren',
            embed_dim=8,
            positional_encoding_args={'legendre_polys': 4},
            network_args={'hidden_dim': 16, 'num_hidden_layers': 1},
        )

    def training_step(self, batch: list[Tensor], batch_idx: int) -> Tensor:
        return self.location_encoder(batch[0]).pow(2).mean()

    def validation_step(self, batch: list[Tensor], batch_idx: int) -> None:
        self.log('val_loss', self.location_encoder(batch[0]).pow(2).mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader() -> DataLoader[tuple[Tensor, ...]]:
    points = torch.tensor([[0.0, 0.0], [90.0, 45.0], [-120.0, -30.0], [10.0, 60.0]])
    return DataLoader(TensorDataset(points), batch_size=2)


def _fit(tmp_path, callback, logger, epochs=1, sanity=0) -> pl.Trainer:
    trainer = pl.Trainer(
        accelerator='cpu',
        max_epochs=epochs,
        limit_train_batches=1,
        limit_val_batches=1,
        num_sanity_val_steps=sanity,
        logger=logger,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(_Task(), _loader(), _loader())
    return trainer


def _images(log_dir) -> list:
    events = EventAccumulator(str(log_dir), size_guidance={'images': 0})
    events.Reload()
    if 'embedding_map' not in events.Tags()['images']:
        return []
    return events.Images('embedding_map')


@pytest.mark.parametrize(
    ('every', 'epochs', 'steps'),
    [(1, 1, [1]), (2, 4, [2, 4])],
    ids=['every epoch', 'every 2 epochs'],
)
def test_map_is_logged_every_n_epochs_not_in_the_sanity_check(
    tmp_path, every, epochs, steps
) -> None:
    logger = TensorBoardLogger(tmp_path, name='', version='run')
    callback = EmbeddingMapLogger(every_n_epochs=every, resolution=10.0)
    # The sanity check runs a validation epoch end too (at step 0): no map.
    _fit(tmp_path, callback, logger, epochs=epochs, sanity=1)
    logger.experiment.flush()
    images = _images(tmp_path / 'run')
    # One training step per epoch; each map is 18 x 36 pixels at 10 degrees.
    assert [image.step for image in images] == steps
    assert {(image.height, image.width) for image in images} == {(18, 36)}


def test_other_loggers_are_skipped_with_one_info_line(tmp_path, caplog) -> None:
    callback = EmbeddingMapLogger(resolution=30.0)
    drawn = []
    callback.render = lambda encoder: drawn.append(encoder)  # type: ignore[method-assign,assignment,return-value]
    with caplog.at_level(logging.INFO):
        _fit(tmp_path, callback, CSVLogger(tmp_path), epochs=2)
    assert drawn == []
    lines = [r.message for r in caplog.records if 'EmbeddingMapLogger' in r.message]
    assert lines == [
        'EmbeddingMapLogger: no TensorBoardLogger, so no embedding map is logged'
    ]


def test_render_gives_an_area_weighted_rgb_map() -> None:
    encoder = satclip_tg.build_location_encoder(
        'sphericalharmonics',
        'siren',
        embed_dim=8,
        positional_encoding_args={'legendre_polys': 4},
        network_args={'hidden_dim': 16, 'num_hidden_layers': 1},
    )
    encoder.train()
    image = EmbeddingMapLogger(resolution=5.0).render(encoder)
    assert image.shape == (36, 72, 3) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert image.std(axis=(0, 1)).min() > 0.05  # three informative channels
    assert encoder.training  # its mode is restored


@pytest.mark.parametrize(
    ('kwargs', 'message'),
    [
        ({'every_n_epochs': 0}, 'every_n_epochs must be at least 1'),
        ({'resolution': 7.0}, 'divides 180'),
        ({'resolution': 0.0}, 'divides 180'),
    ],
)
def test_bad_arguments_are_refused(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        EmbeddingMapLogger(**kwargs)
