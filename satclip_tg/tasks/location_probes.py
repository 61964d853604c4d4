"""Downstream TorchGeo tasks: a probe (or a fine-tuned encoder) on (lon, lat) labels.

`LocationRegressionTask` and `LocationClassificationTask` embed the points of
a batch with a location encoder (a checkpoint, or one built from registered
components) and train a linear or MLP head on the embeddings, standardized by
a non-affine batch normalisation. With ``freeze_encoder`` (the default) only
the head trains and the encoder stays in eval mode; otherwise the encoder is
fine-tuned too. Batches are those of `PointLabelDataModule`:
``{'point': (B, 2), 'label': (B,)}``.
"""

from typing import Any, Literal

import torch
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch import Tensor, nn
from torchgeo.tasks import BaseTask
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score
from torchmetrics.regression import MeanSquaredError, R2Score

from ..location.api import build_location_encoder
from ..location.encoder import encoder_dtype

__all__ = ['LocationClassificationTask', 'LocationRegressionTask']


def _head(
    dim_in: int, dim_out: int, probe: str, hidden_dim: int, layers: int
) -> nn.Module:
    if probe == 'linear':
        return nn.Linear(dim_in, dim_out)
    if probe != 'mlp':
        raise ValueError(f"probe must be 'linear' or 'mlp', got {probe!r}")
    modules: list[nn.Module] = []
    width = dim_in
    for _ in range(layers):
        modules += [nn.Linear(width, hidden_dim), nn.ReLU()]
        width = hidden_dim
    modules.append(nn.Linear(width, dim_out))
    return nn.Sequential(*modules)


class _LocationProbeTask(BaseTask):
    ignore = None
    outputs = 1

    def __init__(
        self,
        positional_encoding: str = 'sphericalharmonics',
        positional_encoding_args: dict[str, Any] | None = None,
        network: str = 'siren',
        network_args: dict[str, Any] | None = None,
        embed_dim: int = 256,
        encoder_checkpoint: str | None = None,
        freeze_encoder: bool = True,
        probe: Literal['linear', 'mlp'] = 'mlp',
        hidden_dim: int = 64,
        num_hidden_layers: int = 2,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        self.encoder: nn.Module
        self.head: nn.Module
        super().__init__()

    def configure_models(self) -> None:
        """Build the location encoder, the feature normalisation and the head."""
        hparams = self.hparams
        if hparams['encoder_checkpoint']:
            from ..pretrained import load_location_encoder

            self.encoder = load_location_encoder(hparams['encoder_checkpoint'])
        else:
            self.encoder = build_location_encoder(
                hparams['positional_encoding'],
                hparams['network'],
                embed_dim=hparams['embed_dim'],
                positional_encoding_args=hparams['positional_encoding_args'],
                network_args=hparams['network_args'],
            )
        with torch.no_grad():
            dim = int(self.encoder(torch.zeros(1, 2)).shape[1])
        if hparams['freeze_encoder']:
            self.encoder.requires_grad_(False)
            self.encoder.eval()
        self.normalize = nn.BatchNorm1d(dim, affine=False)
        if self._outputs() is not None:
            self._build_head()

    def _build_head(self) -> None:
        outputs = self._outputs()
        assert outputs is not None
        hparams = self.hparams
        self.head = _head(
            self.normalize.num_features,
            outputs,
            hparams['probe'],
            hparams['hidden_dim'],
            hparams['num_hidden_layers'],
        )

    def _outputs(self) -> int | None:
        return 1

    def train(self, mode: bool = True) -> '_LocationProbeTask':
        """Set training mode; a frozen encoder stays in eval mode.

        Args:
            mode: Training mode or not.

        Returns:
            The task.
        """
        super().train(mode)
        if self.hparams['freeze_encoder']:
            self.encoder.eval()
        return self

    def forward(self, points: Tensor) -> Tensor:
        """Predict from (lon, lat) points.

        Args:
            points: ``(B, 2)`` (lon, lat) in degrees.

        Returns:
            ``(B, outputs)`` predictions (standardized target, or logits).
        """
        if 'head' not in self._modules:
            raise RuntimeError(
                'num_classes is not known yet: pass it, or let a trainer set '
                'the task up with a data module that knows its classes'
            )
        embeddings = self.encoder(points.to(encoder_dtype(self.encoder))).float()
        out: Tensor = self.head(self.normalize(embeddings))
        return out

    def _loss(self, output: Tensor, label: Tensor) -> Tensor:
        raise NotImplementedError

    def training_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """Compute the training loss.

        Args:
            batch: ``{'point', 'label'}``.
            batch_idx: Index of the batch.
            dataloader_idx: Index of the dataloader.

        Returns:
            The loss.
        """
        loss = self._loss(self(batch['point']), batch['label'])
        self.log('train_loss', loss, batch_size=len(batch['label']), prog_bar=True)
        return loss

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        output = self(batch['point'])
        loss = self._loss(output, batch['label'])
        size = len(batch['label'])
        self.log(f'{stage}_loss', loss, batch_size=size)
        metrics: MetricCollection = getattr(self, f'{stage}_metrics')
        metrics.update(self._prediction(output), batch['label'])
        self.log_dict(metrics, batch_size=size)
        return loss

    def _prediction(self, output: Tensor) -> Tensor:
        return output

    def validation_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """Compute the validation loss and metrics.

        Args:
            batch: ``{'point', 'label'}``.
            batch_idx: Index of the batch.
            dataloader_idx: Index of the dataloader.

        Returns:
            The loss.
        """
        return self._evaluate(batch, 'val')

    def test_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """Compute the test loss and metrics.

        Args:
            batch: ``{'point', 'label'}``.
            batch_idx: Index of the batch.
            dataloader_idx: Index of the dataloader.

        Returns:
            The loss.
        """
        return self._evaluate(batch, 'test')

    def predict_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """Predict a batch.

        Args:
            batch: ``{'point'}``.
            batch_idx: Index of the batch.
            dataloader_idx: Index of the dataloader.

        Returns:
            Predictions (standardized values, or class indices).
        """
        return self._prediction(self(batch['point']))

    def configure_optimizers(self) -> OptimizerLRScheduler:
        """AdamW over the trainable parameters.

        Returns:
            The optimizer.
        """
        parameters = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.AdamW(
            parameters,
            lr=self.hparams['lr'],
            weight_decay=self.hparams['weight_decay'],
        )


class LocationRegressionTask(_LocationProbeTask):
    """Regression from (lon, lat) with a probe on location embeddings.

    Loss: MSE on the (standardized) target. Metrics per stage (``val_``,
    ``test_``): ``r2`` and ``mse``.
    """

    def __init__(
        self,
        positional_encoding: str = 'sphericalharmonics',
        positional_encoding_args: dict[str, Any] | None = None,
        network: str = 'siren',
        network_args: dict[str, Any] | None = None,
        embed_dim: int = 256,
        encoder_checkpoint: str | None = None,
        freeze_encoder: bool = True,
        probe: Literal['linear', 'mlp'] = 'mlp',
        hidden_dim: int = 64,
        num_hidden_layers: int = 2,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        """Initialize the task.

        Args:
            positional_encoding: Registered positional encoding (when no
                checkpoint is given).
            positional_encoding_args: Its hyperparameters.
            network: Registered location network.
            network_args: Its hyperparameters.
            embed_dim: Embedding size of a built encoder.
            encoder_checkpoint: A checkpoint (path or id) accepted by
                `satclip_tg.pretrained.load_location_encoder`; overrides the
                components above.
            freeze_encoder: Train the head only (a probe); otherwise fine-tune.
            probe: ``'linear'`` or ``'mlp'`` head.
            hidden_dim: Width of the MLP head.
            num_hidden_layers: Hidden layers of the MLP head.
            lr: AdamW learning rate.
            weight_decay: AdamW weight decay.
        """
        super().__init__(
            positional_encoding,
            positional_encoding_args,
            network,
            network_args,
            embed_dim,
            encoder_checkpoint,
            freeze_encoder,
            probe,
            hidden_dim,
            num_hidden_layers,
            lr,
            weight_decay,
        )

    def configure_metrics(self) -> None:
        """Set up R^2 and MSE."""
        metrics = MetricCollection({'r2': R2Score(), 'mse': MeanSquaredError()})
        self.val_metrics = metrics.clone(prefix='val_')
        self.test_metrics = metrics.clone(prefix='test_')

    def _loss(self, output: Tensor, label: Tensor) -> Tensor:
        return nn.functional.mse_loss(output[:, 0], label.float())

    def _prediction(self, output: Tensor) -> Tensor:
        return output[:, 0]


class LocationClassificationTask(_LocationProbeTask):
    """Classification from (lon, lat) with a probe on location embeddings.

    Loss: cross-entropy. Metrics per stage: ``accuracy`` and ``macro_f1``.
    """

    monitor = 'val_loss'

    def __init__(
        self,
        num_classes: int | None = None,
        positional_encoding: str = 'sphericalharmonics',
        positional_encoding_args: dict[str, Any] | None = None,
        network: str = 'siren',
        network_args: dict[str, Any] | None = None,
        embed_dim: int = 256,
        encoder_checkpoint: str | None = None,
        freeze_encoder: bool = True,
        probe: Literal['linear', 'mlp'] = 'mlp',
        hidden_dim: int = 64,
        num_hidden_layers: int = 2,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        """Initialize the task.

        Args:
            num_classes: Number of classes (labels are 0 .. num_classes - 1);
                ``None`` reads it from the data module when the trainer sets
                the task up (`setup`): its ``num_classes``, else the length
                of its ``classes`` (`PointLabelDataModule` knows both), so a
                config need not copy the count of a downstream data set.
            positional_encoding: Registered positional encoding (when no
                checkpoint is given).
            positional_encoding_args: Its hyperparameters.
            network: Registered location network.
            network_args: Its hyperparameters.
            embed_dim: Embedding size of a built encoder.
            encoder_checkpoint: A checkpoint (path or id) accepted by
                `satclip_tg.pretrained.load_location_encoder`; overrides the
                components above.
            freeze_encoder: Train the head only (a probe); otherwise fine-tune.
            probe: ``'linear'`` or ``'mlp'`` head.
            hidden_dim: Width of the MLP head.
            num_hidden_layers: Hidden layers of the MLP head.
            lr: AdamW learning rate.
            weight_decay: AdamW weight decay.

        Raises:
            ValueError: If ``num_classes < 2``.
        """
        if num_classes is not None and num_classes < 2:
            raise ValueError(f'num_classes must be at least 2, got {num_classes}')
        super().__init__(
            positional_encoding,
            positional_encoding_args,
            network,
            network_args,
            embed_dim,
            encoder_checkpoint,
            freeze_encoder,
            probe,
            hidden_dim,
            num_hidden_layers,
            lr,
            weight_decay,
        )

    def _outputs(self) -> int | None:
        classes = self.hparams['num_classes']
        return None if classes is None else int(classes)

    def setup(self, stage: str) -> None:
        """Take ``num_classes`` from the data module when it was not given.

        The trainer sets the data module up first, so its classes are known
        here; the head and the metrics are built now, before the optimizer
        and before a checkpoint's weights are restored. The count is stored in
        the hyperparameters, so a checkpoint rebuilds the same head.

        Args:
            stage: ``'fit'``, ``'validate'``, ``'test'`` or ``'predict'``.

        Raises:
            ValueError: If ``num_classes`` was not given and the data module
                does not provide at least 2 classes.
        """
        if self.hparams['num_classes'] is not None:
            return
        datamodule = getattr(self.trainer, 'datamodule', None)
        count = getattr(datamodule, 'num_classes', None)
        if count is None:
            count = len(getattr(datamodule, 'classes', ()) or ())
        if count < 2:
            raise ValueError(
                'num_classes is not set and the data module gives '
                f'{count} classes; set model.init_args.num_classes'
            )
        self.hparams['num_classes'] = int(count)
        self._build_head()
        self.configure_metrics()

    def configure_metrics(self) -> None:
        """Set up accuracy and macro-F1 (once ``num_classes`` is known)."""
        if self.hparams['num_classes'] is None:
            return
        classes = int(self.hparams['num_classes'])
        metrics = MetricCollection(
            {
                'accuracy': MulticlassAccuracy(classes, average='micro'),
                'macro_f1': MulticlassF1Score(classes, average='macro'),
            }
        )
        self.val_metrics = metrics.clone(prefix='val_')
        self.test_metrics = metrics.clone(prefix='test_')

    def _loss(self, output: Tensor, label: Tensor) -> Tensor:
        return nn.functional.cross_entropy(output, label.long())

    def _prediction(self, output: Tensor) -> Tensor:
        return output.argmax(dim=1)
