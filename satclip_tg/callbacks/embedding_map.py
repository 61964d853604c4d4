"""Log a world map of the location embeddings to TensorBoard while training."""

import math

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

__all__ = ['EmbeddingMapLogger']


class EmbeddingMapLogger(Callback):
    """Log the PCA map of the location encoder at the end of validation epochs.

    The task's location encoder (``pl_module.location_encoder``) embeds the
    cell centres of a global grid; the first three principal components
    (area-weighted) become the red, green and blue channels of an image in
    plate carree, north up (`satclip_tg.embedding.embed_grid` and
    `satclip_tg.embedding.principal_components_rgb`: the same map as the
    demo's ``embedding_map.png``, without coastlines). The image goes to
    TensorBoard as ``embedding_map`` at the current global step, so its
    slider shows how the embeddings take shape during pretraining.

    Only process 0 draws, never during the sanity check, and only when a
    `TensorBoardLogger` is among the trainer's loggers (other loggers are
    skipped with one info line). A map costs one forward pass of the encoder
    over the grid (16,200 points at 2 degrees) and a PCA of their embeddings.
    Nothing is logged in runs without a validation loop.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        resolution: float = 2.0,
        tag: str = 'embedding_map',
    ) -> None:
        """Initialize the callback.

        Args:
            every_n_epochs: Draw after every n-th validation epoch.
            resolution: Grid cell size in degrees; must divide 180 (2 degrees:
                a 90 x 180 pixel map).
            tag: TensorBoard image tag.

        Raises:
            ValueError: If ``every_n_epochs`` is not positive or
                ``resolution`` does not divide 180 degrees.
        """
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError(f'every_n_epochs must be at least 1, got {every_n_epochs}')
        rows = 180.0 / resolution if resolution > 0 else math.nan
        if not (math.isfinite(rows) and abs(rows - round(rows)) < 1e-9):
            raise ValueError(
                f'resolution must be a positive number of degrees that divides '
                f'180 (e.g. 1, 2 or 5), got {resolution}'
            )
        self.every_n_epochs = every_n_epochs
        self.resolution = resolution
        self.tag = tag
        self._said = False

    def _say_once(self, message: str) -> None:
        if not self._said:
            rank_zero_info(f'EmbeddingMapLogger: {message}')
            self._said = True

    def on_validation_epoch_end(
        self, trainer: 'pl.Trainer', pl_module: 'pl.LightningModule'
    ) -> None:
        """Draw the map and log it to TensorBoard.

        Args:
            trainer: The trainer.
            pl_module: The task; it must have a ``location_encoder``.
        """
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        loggers = [log for log in trainer.loggers if isinstance(log, TensorBoardLogger)]
        if not loggers:
            self._say_once('no TensorBoardLogger, so no embedding map is logged')
            return
        encoder = getattr(pl_module, 'location_encoder', None)
        if not isinstance(encoder, nn.Module):
            self._say_once(
                f'{type(pl_module).__name__} has no location_encoder; no map'
            )
            return
        image = self.render(encoder)
        for log in loggers:
            log.experiment.add_image(
                self.tag, image, global_step=trainer.global_step, dataformats='HWC'
            )

    def render(
        self, encoder: nn.Module
    ) -> np.ndarray[tuple[int, int, int], np.dtype[np.float32]]:
        """The map of an encoder as an image.

        Args:
            encoder: ``(N, 2)`` (lon, lat) -> ``(N, D)``; evaluated in eval
                mode without gradients (its mode is restored).

        Returns:
            ``(180 / resolution, 360 / resolution, 3)`` float32 RGB in [0, 1].
        """
        # Imported here: a callback should import fast.
        from ..embedding.grid import GridSpec, embed_grid
        from ..embedding.pca import principal_components_rgb

        grid = GridSpec.from_bbox((-180, -90, 180, 90), self.resolution)
        device = next(encoder.parameters(), torch.empty(0)).device
        was_training = encoder.training
        try:
            # The location encoder runs in float32 in training too (see
            # SatCLIPPretraining).
            with torch.autocast(device_type=device.type, enabled=False):
                embeddings = embed_grid(encoder, grid)
        finally:
            encoder.train(was_training)
        latitudes = grid.latitudes().numpy()[:, None]
        rgb, _ = principal_components_rgb(embeddings, np.cos(np.radians(latitudes)))
        return rgb.astype(np.float32)
