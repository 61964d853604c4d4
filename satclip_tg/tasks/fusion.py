"""Image + location fusion: TorchGeo's Classification/Regression + a location encoder.

`LocationFusionClassification` and `LocationFusionRegression` are TorchGeo's
`Classification` and `Regression` (same arguments, losses, metrics, logging
and plots) with a location encoder beside the image model. The timm model
loses its classifier and gives pooled image features; the location of each
sample (its ``point``, or the centre of its ``bounds``: see
`satclip_tg.transforms.location_embedding.sample_points`) is embedded by the
location encoder, and a head combines the two:

* ``fusion='concat'``: ``head([image features, norm(location embedding)])``,
  one linear layer over the concatenation (``norm`` is a non-affine layer
  norm, since location embeddings have no fixed scale);
* ``fusion='prior'`` (classification only): the class probabilities of the
  image head are multiplied by a location prior, a small MLP on the
  location embedding: ``log_softmax(image logits) + log_softmax(prior
  logits)``, the SatCLIP paper's iNaturalist set-up. The outputs are
  unnormalised log-probabilities, so cross-entropy and argmax apply as to
  logits.

The location encoder is frozen (eval mode, no gradients) by default;
``freeze_location_encoder=False`` fine-tunes it with the rest.
"""

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Literal, Self, cast

import torch
from pyproj import CRS as PROJ_CRS
from rasterio.crs import CRS as RIO_CRS
from torch import Tensor, nn
from torchgeo.datasets.utils import Sample
from torchgeo.tasks import BaseTask, Classification, Regression
from torchvision.models._api import WeightsEnum

from ..embedding import embedding_width
from ..location.encoder import encoder_device, encoder_dtype
from ..transforms.location_embedding import resolve_location_encoder, sample_points

__all__ = ['LocationFusionClassification', 'LocationFusionRegression']

Fusion = Literal['concat', 'prior']
_FUSIONS = ('concat', 'prior')


def _image_feature_dim(model: nn.Module) -> int:
    # After reset_classifier(0) a timm model returns its pre-logits
    # features: head_hidden_size where a model has a pre-logits layer
    # (MobileNetV3's conv head), num_features otherwise.
    size = getattr(model, 'head_hidden_size', None) or getattr(
        model, 'num_features', None
    )
    if not isinstance(size, int):
        raise ValueError(
            f'{type(model).__name__} does not report its feature size '
            '(num_features); use a timm model'
        )
    return size


class _LocationFusion(BaseTask):
    """What both fusion tasks share: the encoder, the head, the location.

    Placed before TorchGeo's task in the bases, so ``super()`` in the steps
    is TorchGeo's step, run with the batch's locations at hand.
    """

    def _setup_ignore(self, location_encoder: nn.Module | str | None) -> None:
        if location_encoder is None:
            raise ValueError(
                'location_encoder is required: a checkpoint path or model id '
                "accepted by load_location_encoder (e.g. 'runs/demo-*/satclip-"
                "demo.ckpt' or 'microsoft/SatCLIP-ViT16-L40'), or an nn.Module"
            )
        # A module is saved in the state dict, not among the hyperparameters
        # (Lightning would pickle it there too); a name/path is kept, so that
        # load_from_checkpoint rebuilds the encoder by itself.
        self.ignore: Sequence[str] | str | None = (
            ('weights', 'location_encoder')
            if isinstance(location_encoder, nn.Module)
            else 'weights'
        )
        # A tuple, as a module may not be assigned before Module.__init__.
        self._location_source = (location_encoder,)
        self._points: Tensor | None = None

    def _configure_fusion(self, num_outputs: int) -> None:
        fusion = self.hparams['fusion']
        if fusion not in _FUSIONS:
            raise ValueError(f"fusion must be 'concat' or 'prior', got {fusion!r}")
        self.model.reset_classifier(0)
        image_dim = _image_feature_dim(self.model)
        encoder = resolve_location_encoder(self._location_source[0])
        del self._location_source
        location_dim = embedding_width(encoder)
        if location_dim is None:
            # Only for modules that do not declare their width (embed_dim).
            with torch.no_grad():
                probe = torch.zeros(1, 2, dtype=encoder_dtype(encoder))
                location_dim = int(encoder(probe.to(encoder_device(encoder))).shape[1])
        self.location_encoder = encoder
        if self.hparams['freeze_location_encoder']:
            encoder.requires_grad_(False)
            encoder.eval()
        self.location_norm = nn.LayerNorm(location_dim, elementwise_affine=False)
        if fusion == 'concat':
            self.head: nn.Module = nn.Linear(image_dim + location_dim, num_outputs)
        else:
            hidden = int(self.hparams['prior_hidden_dim'])
            self.head = nn.Linear(image_dim, num_outputs)
            self.prior = nn.Sequential(
                nn.Linear(location_dim, hidden),
                nn.ReLU(),
                nn.Linear(hidden, num_outputs),
            )

    def _embed(self, points: Tensor) -> Tensor:
        encoder = self.location_encoder
        inputs = points.to(encoder_device(encoder), encoder_dtype(encoder))
        if self.hparams['freeze_location_encoder']:
            with torch.no_grad():
                embedding = encoder(inputs)
        else:
            embedding = encoder(inputs)
        out: Tensor = self.location_norm(embedding.float())
        return out

    def _fuse(self, image: Tensor, points: Tensor | None) -> Tensor:
        if points is None:
            points = self._points
        if points is None:
            raise ValueError(
                'no location for these images: call task(images, points) with '
                '(B, 2) (lon, lat) points, or run the task on batches with '
                "'point' or 'bounds'"
            )
        features = self.model(image)
        location = self._embed(points).to(features.device)
        if len(location) != len(features):
            raise ValueError(
                f'{len(features)} images but {len(location)} locations in the batch'
            )
        if self.hparams['fusion'] == 'concat':
            out: Tensor = self.head(torch.cat([features, location], dim=1))
            return out
        image_log_p = torch.log_softmax(self.head(features), dim=1)
        prior_log_p = torch.log_softmax(self.prior(location), dim=1)
        return image_log_p + prior_log_p

    @contextlib.contextmanager
    def _located(self, batch: Sample) -> Iterator[None]:
        # TorchGeo's steps call self(x) with the image alone; the batch's
        # locations are held here for the duration of one step.
        self._points = sample_points(batch, self.hparams['crs'])
        try:
            yield
        finally:
            self._points = None

    def forward(self, image: Tensor, points: Tensor | None = None) -> Tensor:
        """Fused outputs (log-probabilities with ``fusion='prior'``).

        Args:
            image: ``(B, C, H, W)`` images.
            points: ``(B, 2)`` (lon, lat) degrees; inside the task's steps
                they come from the batch.

        Returns:
            ``(B, outputs)``.
        """
        return self._fuse(image, points)

    def train(self, mode: bool = True) -> Self:
        """Set training mode; a frozen location encoder stays in eval mode.

        Args:
            mode: Training mode or not.

        Returns:
            The task.
        """
        super().train(mode)
        if self.hparams['freeze_location_encoder']:
            self.location_encoder.eval()
        return self

    def training_step(
        self, batch: Sample, batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """TorchGeo's training step, with the batch's locations.

        Args:
            batch: ``image``, ``label`` and ``point`` or ``bounds``.
            batch_idx: Index of the batch.
            dataloader_idx: Index of the dataloader.

        Returns:
            The loss.
        """
        with self._located(batch):
            # TorchGeo's Classification/Regression return the loss tensor.
            loss: Any = super().training_step(batch, batch_idx, dataloader_idx)
            return cast(Tensor, loss)

    def validation_step(
        self, batch: Sample, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """TorchGeo's validation step, with the batch's locations.

        Args:
            batch: ``image``, ``label`` and ``point`` or ``bounds``.
            batch_idx: Index of the batch.
            dataloader_idx: Index of the dataloader.
        """
        with self._located(batch):
            super().validation_step(batch, batch_idx, dataloader_idx)

    def test_step(self, batch: Sample, batch_idx: int, dataloader_idx: int = 0) -> None:
        """TorchGeo's test step, with the batch's locations.

        Args:
            batch: ``image``, ``label`` and ``point`` or ``bounds``.
            batch_idx: Index of the batch.
            dataloader_idx: Index of the dataloader.
        """
        with self._located(batch):
            super().test_step(batch, batch_idx, dataloader_idx)

    def predict_step(
        self, batch: Sample, batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """TorchGeo's predict step (class probabilities or values), located.

        Args:
            batch: ``image`` and ``point`` or ``bounds``.
            batch_idx: Index of the batch.
            dataloader_idx: Index of the dataloader.

        Returns:
            ``(B, outputs)``.
        """
        with self._located(batch):
            out: Tensor = super().predict_step(batch, batch_idx, dataloader_idx)
            return out


class LocationFusionClassification(_LocationFusion, Classification):
    """Image classification fused with a location encoder's embedding.

    TorchGeo's `Classification` (any timm ``model``, its ``weights``,
    ``in_channels``, losses and metrics) where the head sees the location
    too: by concatenation (``fusion='concat'``) or as a multiplicative
    class prior (``fusion='prior'``). Batches need ``image``, ``label`` and
    ``point`` or ``bounds`` (with ``crs`` for GeoDataset batches).
    """

    def __init__(
        self,
        model: str = 'resnet50',
        weights: WeightsEnum | str | bool | None = None,
        in_channels: int = 3,
        task: Literal['binary', 'multiclass', 'multilabel'] = 'multiclass',
        num_classes: int | None = None,
        num_labels: int | None = None,
        labels: list[str] | None = None,
        pos_weight: Tensor | None = None,
        loss: Literal['ce', 'bce', 'jaccard', 'focal', 'dice'] = 'ce',
        class_weights: Tensor | Sequence[float] | None = None,
        ignore_index: int | None = None,
        lr: float = 1e-3,
        patience: int = 10,
        freeze_backbone: bool = False,
        location_encoder: str | nn.Module | None = None,
        freeze_location_encoder: bool = True,
        fusion: Fusion = 'concat',
        prior_hidden_dim: int = 256,
        crs: str | PROJ_CRS | RIO_CRS | None = None,
    ) -> None:
        """Initialize the task.

        Args:
            model: Name of the timm model.
            weights: Initial image model weights, as in TorchGeo's
                `Classification`.
            in_channels: Number of input channels.
            task: ``'binary'``, ``'multiclass'`` or ``'multilabel'``.
            num_classes: Number of classes (``task='multiclass'``).
            num_labels: Number of labels (``task='multilabel'``).
            labels: Class names.
            pos_weight: Weight of positive examples (``'bce'`` loss).
            loss: ``'ce'``, ``'bce'``, ``'jaccard'``, ``'focal'`` or ``'dice'``.
            class_weights: Per-class weights of the ``'ce'`` loss.
            ignore_index: Class index to ignore in the loss and metrics.
            lr: Learning rate.
            patience: Patience of the learning-rate scheduler.
            freeze_backbone: Train the heads only, not the image model.
            location_encoder: A location encoder module, or a source for
                `satclip_tg.pretrained.load_location_encoder` (checkpoint
                path, official model id, TorchGeo weights name). Required.
            freeze_location_encoder: Keep the location encoder frozen
                (default) or fine-tune it.
            fusion: ``'concat'`` (features joined before the head) or
                ``'prior'`` (a location prior multiplies the class
                probabilities; ``task='multiclass'`` only).
            prior_hidden_dim: Width of the location-prior MLP (``'prior'``).
            crs: CRS of the batches' ``bounds`` when they carry no ``crs``
                (GeoDataset batches: ``dataset.crs``).

        Raises:
            ValueError: If ``location_encoder`` is missing, ``fusion`` is
                unknown, or ``'prior'`` is asked for a task other than
                multiclass.
        """
        self._setup_ignore(location_encoder)
        if fusion == 'prior' and task != 'multiclass':
            raise ValueError(
                f"fusion='prior' multiplies class probabilities, so it needs "
                f"task='multiclass', got task={task!r}; use fusion='concat'"
            )
        super().__init__(
            model=model,
            weights=weights,
            in_channels=in_channels,
            task=task,
            num_classes=num_classes,
            num_labels=num_labels,
            labels=labels,
            pos_weight=pos_weight,
            loss=loss,
            class_weights=class_weights,
            ignore_index=ignore_index,
            lr=lr,
            patience=patience,
            freeze_backbone=freeze_backbone,
        )

    def configure_models(self) -> None:
        """Build the image model (without classifier), encoder and head."""
        super().configure_models()
        outputs = self.hparams['num_classes'] or self.hparams['num_labels'] or 1
        self._configure_fusion(int(outputs))


class LocationFusionRegression(_LocationFusion, Regression):
    """Image regression fused with a location encoder's embedding.

    TorchGeo's `Regression` (any timm ``model``) where the head sees the
    concatenation of image features and the location embedding. Batches
    need ``image``, ``label`` and ``point`` or ``bounds``.
    """

    def __init__(
        self,
        model: str = 'resnet50',
        backbone: str = 'resnet50',
        weights: WeightsEnum | str | bool | None = None,
        in_channels: int = 3,
        num_outputs: int = 1,
        labels: list[str] | None = None,
        num_filters: int = 3,
        loss: Literal['mae', 'mse'] = 'mse',
        lr: float = 1e-3,
        patience: int = 10,
        freeze_backbone: bool = False,
        freeze_decoder: bool = False,
        location_encoder: str | nn.Module | None = None,
        freeze_location_encoder: bool = True,
        fusion: Fusion = 'concat',
        prior_hidden_dim: int = 256,
        crs: str | PROJ_CRS | RIO_CRS | None = None,
    ) -> None:
        """Initialize the task.

        Args:
            model: Name of the timm model.
            backbone: Unused (TorchGeo's pixelwise regression argument).
            weights: Initial image model weights, as in TorchGeo's
                `Regression`.
            in_channels: Number of input channels.
            num_outputs: Number of regression outputs.
            labels: Output names.
            num_filters: Unused (TorchGeo's FCN argument).
            loss: ``'mse'`` or ``'mae'``.
            lr: Learning rate.
            patience: Patience of the learning-rate scheduler.
            freeze_backbone: Train the head only, not the image model.
            freeze_decoder: Unused (TorchGeo's pixelwise argument).
            location_encoder: A location encoder module, or a source for
                `satclip_tg.pretrained.load_location_encoder`. Required.
            freeze_location_encoder: Keep the location encoder frozen
                (default) or fine-tune it.
            fusion: Only ``'concat'``: a location prior multiplies class
                probabilities, which regression does not have.
            prior_hidden_dim: Unused (kept for the same signature as the
                classification task).
            crs: CRS of the batches' ``bounds`` when they carry no ``crs``.

        Raises:
            ValueError: If ``location_encoder`` is missing or ``fusion`` is
                not ``'concat'``.
        """
        if fusion != 'concat':
            raise ValueError(
                f'fusion={fusion!r} is not available for regression: a location '
                "prior multiplies class probabilities; use fusion='concat'"
            )
        self._setup_ignore(location_encoder)
        super().__init__(
            model=model,
            backbone=backbone,
            weights=weights,
            in_channels=in_channels,
            num_outputs=num_outputs,
            labels=labels,
            num_filters=num_filters,
            loss=loss,
            lr=lr,
            patience=patience,
            freeze_backbone=freeze_backbone,
            freeze_decoder=freeze_decoder,
        )

    def configure_models(self) -> None:
        """Build the image model (without head), encoder and head."""
        super().configure_models()
        self._configure_fusion(int(self.hparams['num_outputs']))
