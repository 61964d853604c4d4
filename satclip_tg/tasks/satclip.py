"""SatCLIP pretraining as a TorchGeo task."""

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

import torch
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch import Tensor, nn
from torch.optim import AdamW
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader
from torchgeo.tasks import BaseTask
from torchmetrics import CatMetric

from ..checkpoint_format import CHECKPOINT_KEY, task_checkpoint_entry
from ..geodesy import great_circle_km
from ..image.backbones import backbone_projection
from ..location.api import build_location_encoder
from ..location.encoder import LocationEncoder
from ..losses import ClipLoss, clip_logits
from ..plugins import get_registry
from ..renamed_arguments import NEW_NAMES, resolve_renamed

# CHECKPOINT_KEY stays importable from here; its home is checkpoint_format.
__all__ = ['CHECKPOINT_KEY', 'SatCLIPPretraining', 'SatCLIPTask']


class SatCLIPPretraining(BaseTask):
    """Contrastive pretraining of a location encoder against satellite images.

    Each batch holds images and the (lon, lat) they were taken at. The image
    encoder (a backbone with a projection to ``embed_dim``) and the location
    encoder (a positional encoding and a network) are trained so that the
    embeddings of matching pairs are more similar than those of all other
    pairs, with CLIP's symmetric cross-entropy and a learnable temperature.

    Batches come in two forms: ``{'image', 'point'}`` (live tiles, e.g. from
    `S2100KDataModule`) or ``{'features', 'point'}`` (a frozen backbone's
    pooled features, from `CachedFeatureDataModule`), to which only the image
    encoder's projection is applied. Both train the same parameters, log the
    same metrics and write the same checkpoint layout, so a model trained on
    cached features embeds images with its full image encoder.

    Logged metrics: ``train_loss``, ``logit_scale``; and per epoch on the
    validation (``val_``) and test (``test_``) sets: the loss, in-batch
    retrieval accuracy in both directions (``loc2img_top1``, ``loc2img_top5``,
    ``img2loc_top1``, ``img2loc_top5``), ``median_km`` (great-circle distance
    between each image's true location and the location retrieved for it) and
    ``random_median_km`` (the same for a random in-batch guess, for scale).

    The class and argument names follow TorchGeo's tasks (`torchgeo.tasks.SimCLR`,
    `torchgeo.tasks.MoCo`: no ``Task`` suffix; ``model``, ``weights``,
    ``gather_distributed``). ``Pretraining`` keeps the name apart from
    `torchgeo.models.SatCLIP` (the location encoder alone) and the SatCLIP
    weights enums. `SatCLIPTask` is the older name of the same class: the class
    path of configs and checkpoints saved before the rename, which still load.

    If you use this task, please cite:

    * https://doi.org/10.1609/aaai.v39i4.32457
    """

    # The deprecated argument names: their values are stored under the new
    # names, so that new checkpoints only hold those.
    ignore = tuple(NEW_NAMES)
    monitor = 'val_loss'
    mode = 'min'

    def __init__(
        self,
        model: str = 'resnet18',
        weights: str | None = None,
        model_args: dict[str, Any] | None = None,
        in_channels: int = 13,
        freeze_backbone: bool = True,
        positional_encoding: str = 'sphericalharmonics',
        positional_encoding_args: dict[str, Any] | None = None,
        network: str = 'siren',
        network_args: dict[str, Any] | None = None,
        embed_dim: int = 256,
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        lr_schedule: Literal['constant', 'cosine'] = 'constant',
        warmup_steps: int = 0,
        min_lr: float = 0.0,
        initial_temperature: float = 0.07,
        max_logit_scale: float = 100.0,
        gather_distributed: bool = True,
        backbone: str | None = None,
        backbone_weights: str | None = None,
        backbone_args: dict[str, Any] | None = None,
        gather_negatives: bool | None = None,
    ) -> None:
        """Initialize the task.

        Args:
            model: Registered image backbone, e.g. ``'resnet18'``,
                ``'resnet50'``, ``'vit_small_patch16_224'`` or a plugin's, or
                any timm model name, e.g. ``'efficientnet_b0'``.
            weights: ``None`` (random initialisation), a TorchGeo
                weights name such as ``'ResNet18_Weights.SENTINEL2_ALL_MOCO'``,
                or a checkpoint path.
            model_args: Further options of the backbone, e.g.
                ``{'img_size': 256}`` for a ViT at another input size.
            in_channels: Number of image bands the backbone takes (13 for the
                SSL4EO-S12 weights: S2-100K's 12 bands plus an empty B10).
            freeze_backbone: Train only the projection to ``embed_dim``; the
                frozen backbone stays in eval mode. A backbone with BatchNorm
                that trains needs training batches of at least 2 images:
                fitting with batches of 1 fails at the start of training
                with a `ValueError` naming the settings to change.
            positional_encoding: Registered positional encoding name.
            positional_encoding_args: Its hyperparameters, e.g.
                ``{'legendre_polys': 40}``.
            network: Registered location network name.
            network_args: Its hyperparameters, e.g.
                ``{'hidden_dim': 512, 'num_hidden_layers': 2}``.
            embed_dim: Size of both embeddings.
            lr: Peak learning rate of AdamW.
            weight_decay: AdamW weight decay, applied to weight matrices only
                (not to biases, norms, other 1-D parameters or the temperature).
            lr_schedule: ``'constant'`` or ``'cosine'`` decay to ``min_lr``
                over the training steps (after the warm-up).
            warmup_steps: Steps of linear warm-up from 0 to ``lr``.
            min_lr: Final learning rate of the cosine schedule.
            initial_temperature: Initial softmax temperature (CLIP: 0.07).
            max_logit_scale: Upper clamp of the inverse temperature (CLIP: 100).
            gather_distributed: In distributed training, contrast each sample
                with the embeddings of all processes, not just its own.
            backbone: Deprecated name of ``model``.
            backbone_weights: Deprecated name of ``weights``.
            backbone_args: Deprecated name of ``model_args``.
            gather_negatives: Deprecated name of ``gather_distributed``.

        Raises:
            ValueError: If a deprecated name and its new name are both given
                with different values.
        """
        # The old names win when given (they are None otherwise); the locals
        # are reassigned before save_hyperparameters reads them.
        model = resolve_renamed('model', model, backbone, 'resnet18')
        weights = resolve_renamed('weights', weights, backbone_weights, None)
        model_args = resolve_renamed('model_args', model_args, backbone_args, None)
        gather_distributed = resolve_renamed(
            'gather_distributed', gather_distributed, gather_negatives, True
        )
        self._renamed_hparams: dict[str, Any] = {
            'model': model,
            'weights': weights,
            'model_args': model_args,
            'gather_distributed': gather_distributed,
        }
        self.location_encoder: LocationEncoder
        self.image_encoder: nn.Module
        self._skipped_tiles = 0
        super().__init__()

    def configure_models(self) -> None:
        """Build the image encoder, the location encoder and the temperature."""
        self._store_renamed_hparams()
        hparams = self.hparams
        self.location_encoder = build_location_encoder(
            hparams['positional_encoding'],
            hparams['network'],
            embed_dim=hparams['embed_dim'],
            positional_encoding_args=hparams['positional_encoding_args'],
            network_args=hparams['network_args'],
        )
        factory = get_registry().get('image_backbone', hparams['model']).factory
        self.image_encoder = factory(
            hparams['in_channels'],
            hparams['embed_dim'],
            weights=hparams['weights'],
            freeze=hparams['freeze_backbone'],
            **(hparams['model_args'] or {}),
        )
        if not 0 < hparams['initial_temperature']:
            raise ValueError('initial_temperature must be positive')
        self.logit_scale = nn.Parameter(
            torch.tensor(math.log(1 / hparams['initial_temperature']))
        )

    def _store_renamed_hparams(self) -> None:
        """Store the renamed arguments' values under their new names.

        Under LightningCLI, ``save_hyperparameters`` stores the parsed config
        rather than ``__init__``'s locals, so a config that used an old name
        leaves the new name at its default there: put the resolved values in
        both the hyperparameters and the initial ones (which loggers record).
        """
        initial = getattr(self, '_hparams_initial', None)
        for stored in (self.hparams, initial):
            if isinstance(stored, dict):
                stored.update(self._renamed_hparams)
                for old in NEW_NAMES:
                    stored.pop(old, None)

    def configure_losses(self) -> None:
        """Set up the CLIP loss."""
        self.criterion = ClipLoss(self.hparams['gather_distributed'])

    def configure_metrics(self) -> None:
        """Set up the epoch-level distance metrics."""
        self.retrieval_km = nn.ModuleDict(
            {stage: CatMetric() for stage in ('val', 'test')}
        )
        self.random_km = nn.ModuleDict(
            {stage: CatMetric() for stage in ('val', 'test')}
        )

    def forward(self, images: Tensor, points: Tensor) -> tuple[Tensor, Tensor]:
        """Embed images and their locations.

        Args:
            images: ``(B, C, H, W)`` images.
            points: ``(B, 2)`` (lon, lat) in degrees.

        Returns:
            ``(image_embeddings, location_embeddings)``, each ``(B, embed_dim)``.
        """
        return self._embed_pair({'image': images, 'point': points})

    def embed_images(self, batch: dict[str, Tensor]) -> Tensor:
        """Embed the image side of a batch: images, or cached features.

        Args:
            batch: With ``'image'`` ``(B, C, H, W)``, or with ``'features'``
                ``(B, D)``: the pooled output of the frozen backbone, to which
                only the projection is applied.

        Returns:
            ``(B, embed_dim)`` float32 image embeddings.

        Raises:
            ValueError: If the images have the wrong band count, or the
                features the wrong width.
            TypeError: For features, if the backbone has no ``projection``.
        """
        if 'features' not in batch:
            self._check_bands(batch['image'])
            embeddings: Tensor = self.image_encoder(batch['image'])
            return embeddings.float()
        features = batch['features']
        projection = backbone_projection(self.image_encoder)
        width = getattr(projection, 'in_features', None)
        if features.ndim != 2 or (width is not None and features.shape[1] != width):
            raise ValueError(
                f'cached features have shape {tuple(features.shape)}, but the '
                f'projection of the {self.hparams["model"]} backbone takes '
                f'(B, {width}): the feature cache was made with another backbone; '
                f'run satclip-tg cache-features with this config'
            )
        weight = next(projection.parameters(), None)
        dtype = weight.dtype if weight is not None else torch.float32
        embeddings = projection(features.to(dtype))
        return embeddings.float()

    def _embed_pair(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        points = batch['point']
        # The location side always runs in float32: harmonics of degree 39 and
        # a first SIREN layer with w0 = 30 turn half-precision rounding into
        # large phase errors, and the location encoder is cheap anyway.
        with torch.autocast(device_type=points.device.type, enabled=False):
            location_embeddings = self.location_encoder(points.float())
        return self.embed_images(batch), location_embeddings

    def _check_bands(self, images: Tensor) -> None:
        expected = self.hparams['in_channels']
        if images.ndim != 4 or images.shape[1] != expected:
            raise ValueError(
                f'images have shape {tuple(images.shape)}, but the backbone takes '
                f'(B, {expected}, H, W): set model.init_args.in_channels to the '
                f'number of bands the datamodule produces (S2-100K: 12 bands, '
                f'13 with data.init_args.insert_zero_b10), or change the data'
            )

    def _logit_scale(self) -> Tensor:
        with torch.no_grad():
            self.logit_scale.clamp_(0, math.log(self.hparams['max_logit_scale']))
        return self.logit_scale.exp()

    def training_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor | None:
        """Compute the training loss of one batch.

        Args:
            batch: ``{'image': (B, C, H, W), 'point': (B, 2)}``, optionally
                with ``'skipped'``, the number of unreadable tiles left out;
                or ``{'features': (B, D), 'point': (B, 2)}`` from a feature
                cache.
            batch_idx: Index of the batch.
            dataloader_idx: Index of the dataloader.

        Returns:
            The loss, or ``None`` (no step) when every tile was unreadable.
        """
        self._count_skipped(batch)
        if len(batch['point']) == 0:
            return None
        if len(batch['point']) == 1 and 'image' in batch and self._batchnorm_trains():
            # Reached when unreadable tiles shrank a batch to one image, or
            # with a loader whose batch sizes `on_train_start` cannot tell:
            # BatchNorm would fail on it, and a contrastive batch of one has
            # no negatives, so the step would teach nothing anyway.
            skipped = batch.get('skipped')
            why = (
                'the others were unreadable tiles'
                if skipped is not None and int(skipped.sum())
                # S2100KDataModule takes the count out of the batch itself.
                else 'from the training loader; unreadable tiles may have left it alone'
            )
            warnings.warn(
                f'skipped a training batch of 1 image ({why}): the BatchNorm '
                f'layers of the backbone train and need at least 2 images',
                RuntimeWarning,
                stacklevel=2,
            )
            return None
        image_embeddings, location_embeddings = self._embed_pair(batch)
        scale = self._logit_scale()
        loss: Tensor = self.criterion(image_embeddings, location_embeddings, scale)
        batch_size = len(batch['point'])
        self.log('train_loss', loss, batch_size=batch_size, prog_bar=True)
        self.log('logit_scale', scale.detach(), batch_size=batch_size)
        return loss

    def _batchnorm_trains(self) -> bool:
        """Whether the image encoder normalises with batch statistics in training.

        True for BatchNorm layers in train mode, or without running
        statistics; a frozen `ImageEncoder` keeps its backbone in eval mode.
        The modes are probed by switching the encoder to train mode and back,
        so that plugin backbones that keep layers in eval mode count right.

        Returns:
            Whether a training batch of one image would fail in BatchNorm.
        """
        modes = [(module, module.training) for module in self.image_encoder.modules()]
        try:
            self.image_encoder.train()
            return any(
                isinstance(module, nn.modules.batchnorm._BatchNorm)
                and (module.training or module.running_mean is None)
                for module in self.image_encoder.modules()
            )
        finally:
            for module, mode in modes:
                module.training = mode

    def on_train_start(self) -> None:
        """Refuse settings that give training batches of one image with BatchNorm.

        BatchNorm layers that train fail on a batch of one image ("Expected
        more than 1 value per channel when training") wherever their feature
        map is 1x1, and even where they do not fail, one image gives no
        meaningful batch statistics and a contrastive batch without negatives.
        A frozen backbone (eval mode) is fine with batches of 1.

        Raises:
            ValueError: If a training loader yields a batch of 1 and a
                BatchNorm layer of the image encoder trains.
        """
        causes = [
            cause
            for loader in _dataloaders(self.trainer.train_dataloader)
            if (cause := _batch_of_one(loader)) is not None
        ]
        if causes and self._batchnorm_trains():
            raise ValueError(
                f'training would see batches of 1 image ({causes[0]}), but the '
                f'{self.hparams["model"]} backbone has BatchNorm layers that '
                f'train, which fail on (or learn nothing from) one image. Set '
                f'data.init_args.batch_size to at least 2 and give the training '
                f'split at least 2 tiles per device (more data, or a smaller '
                f'val_split_pct), or set model.init_args.freeze_backbone: true '
                f'(a frozen backbone keeps BatchNorm in eval mode)'
            )

    def _count_skipped(self, batch: dict[str, Tensor]) -> None:
        # `S2100KDataModule` counts skipped tiles itself and hands plain
        # batches; a loader of one's own may still put the count in the batch.
        skipped = batch.get('skipped')
        if skipped is not None:
            self._skipped_tiles += int(skipped.sum())

    def on_train_epoch_end(self) -> None:
        """Report the tiles that were skipped as unreadable in this epoch.

        Adds the data module's count (`S2100KDataModule.take_skipped_tiles`)
        to any counted in the batches, warns and logs ``skipped_tiles``.
        """
        datamodule = getattr(self.trainer, 'datamodule', None)
        take = getattr(datamodule, 'take_skipped_tiles', None)
        if callable(take):
            self._skipped_tiles += int(take('train'))
        if self._skipped_tiles:
            warnings.warn(
                f'{self._skipped_tiles} unreadable tiles were skipped in epoch '
                f'{self.current_epoch}',
                RuntimeWarning,
                stacklevel=2,
            )
            self.log('skipped_tiles', float(self._skipped_tiles))
        self._skipped_tiles = 0

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> Tensor | None:
        if len(batch['point']) == 0:
            return None
        image_embeddings, location_embeddings = self._embed_pair(batch)
        scale = self.logit_scale.exp()
        loss: Tensor = self.criterion(image_embeddings, location_embeddings, scale)
        batch_size = len(batch['point'])
        metrics = {f'{stage}_loss': loss}
        # Retrieval is judged within this process's batch.
        image_logits, location_logits, _ = clip_logits(
            image_embeddings, location_embeddings, scale, gather=False
        )
        targets = torch.arange(batch_size, device=image_logits.device)
        for name, logits in (('img2loc', image_logits), ('loc2img', location_logits)):
            for k in (1, 5):
                top = logits.topk(min(k, batch_size), dim=1).indices
                hit = (top == targets[:, None]).any(dim=1).float().mean()
                metrics[f'{stage}_{name}_top{k}'] = hit
        self.log_dict(metrics, batch_size=batch_size, sync_dist=True)

        points = batch['point'].to(torch.float64)
        retrieved = points[image_logits.argmax(dim=1)]
        retrieval_km, random_km = self._distance_metrics(stage)
        retrieval_km.update(great_circle_km(points, retrieved))
        if batch_size > 1:
            # A random guess among the other locations of the batch.
            pairwise = great_circle_km(points[:, None], points[None, :])
            others = ~torch.eye(batch_size, dtype=torch.bool, device=points.device)
            random_km.update(pairwise[others])
        return loss

    def _distance_metrics(self, stage: str) -> tuple[CatMetric, CatMetric]:
        return (
            cast(CatMetric, self.retrieval_km[stage]),
            cast(CatMetric, self.random_km[stage]),
        )

    def _log_distances(self, stage: str) -> None:
        retrieval_km, random_km = self._distance_metrics(stage)
        for name, metric in (
            ('median_km', retrieval_km),
            ('random_median_km', random_km),
        ):
            if metric.update_count:
                self.log(f'{stage}_{name}', metric.compute().median().float())
            metric.reset()

    def validation_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor | None:
        """Compute the validation loss and retrieval metrics of one batch.

        Args:
            batch: ``{'image': (B, C, H, W), 'point': (B, 2)}``.
            batch_idx: Index of the batch.
            dataloader_idx: Index of the dataloader.

        Returns:
            The loss.
        """
        return self._evaluate(batch, 'val')

    def on_validation_epoch_end(self) -> None:
        """Log the median retrieval distances of the epoch."""
        self._log_distances('val')

    def test_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor | None:
        """Compute the test loss and retrieval metrics of one batch.

        Args:
            batch: ``{'image': (B, C, H, W), 'point': (B, 2)}``.
            batch_idx: Index of the batch.
            dataloader_idx: Index of the dataloader.

        Returns:
            The loss.
        """
        return self._evaluate(batch, 'test')

    def on_test_epoch_end(self) -> None:
        """Log the median retrieval distances of the test set."""
        self._log_distances('test')

    def predict_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Tensor]:
        """Embed the locations (and images, when present) of one batch.

        Args:
            batch: ``{'point': (B, 2)}``, optionally with ``'image'`` or
                cached ``'features'``.
            batch_idx: Index of the batch.
            dataloader_idx: Index of the dataloader.

        Returns:
            ``{'point', 'location_embedding'}`` and, with images or features,
            ``'image_embedding'``.
        """
        points = batch['point']
        with torch.autocast(device_type=points.device.type, enabled=False):
            output = {
                'point': points,
                'location_embedding': self.location_encoder(points.float()),
            }
        if 'image' in batch or 'features' in batch:
            output['image_embedding'] = self.embed_images(batch)
        return output

    def configure_optimizers(self) -> OptimizerLRScheduler:
        """AdamW without weight decay on biases, norms, 1-D params, temperature.

        Returns:
            The optimizer and, unless the schedule is constant without
            warm-up, a per-step learning-rate schedule.
        """
        decay, no_decay = [], []
        for name, parameter in self.named_parameters():
            if not parameter.requires_grad:
                continue
            if parameter.ndim < 2 or name == 'logit_scale' or _is_norm(self, name):
                no_decay.append(parameter)
            else:
                decay.append(parameter)
        optimizer = AdamW(
            [
                {'params': decay, 'weight_decay': self.hparams['weight_decay']},
                {'params': no_decay, 'weight_decay': 0.0},
            ],
            lr=self.hparams['lr'],
        )
        warmup = int(self.hparams['warmup_steps'])
        if self.hparams['lr_schedule'] == 'constant' and warmup == 0:
            return optimizer
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        lr, min_lr = float(self.hparams['lr']), float(self.hparams['min_lr'])
        cosine = self.hparams['lr_schedule'] == 'cosine'

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if not cosine:
                return 1.0
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            return (
                min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
            ) / lr

        scheduler = LambdaLR(optimizer, factor)
        return {
            'optimizer': optimizer,
            'lr_scheduler': {'scheduler': scheduler, 'interval': 'step'},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store what rebuilds the location encoder without an image backbone.

        Also stores the model card (`satclip_tg.model_card.build_model_card`:
        data, config, metrics at save time, versions, date) under
        ``'model_card'``; checkpoints without one still load.

        Args:
            checkpoint: The checkpoint being saved.
        """
        from ..model_card import build_model_card

        try:
            trainer = self.trainer
        except RuntimeError:  # saved by hand, without a trainer
            trainer = None
        checkpoint[CHECKPOINT_KEY] = task_checkpoint_entry(
            self.location_encoder.config, build_model_card(self, trainer)
        )


def _dataloaders(loaders: object) -> list[DataLoader[Any]]:
    """The DataLoaders in what `Trainer.train_dataloader` holds.

    Args:
        loaders: A DataLoader, or a list or dict of them (nested), or None.

    Returns:
        The DataLoaders, flattened.
    """
    if isinstance(loaders, DataLoader):
        return [loaders]
    if isinstance(loaders, Mapping):
        loaders = list(loaders.values())
    if isinstance(loaders, Sequence) and not isinstance(loaders, str):
        return [found for item in loaders for found in _dataloaders(item)]
    return []


def _batch_of_one(loader: DataLoader[Any]) -> str | None:
    """Say why a DataLoader yields a batch of 1 in each epoch, if it does.

    Args:
        loader: A training DataLoader (its sampler is per process under DDP).

    Returns:
        The reason, or None when no batch has 1 sample (or sizes are unknown,
        e.g. for an iterable data set or a custom batch sampler).
    """
    batch_size = loader.batch_size
    try:
        samples = len(loader.sampler)  # type: ignore[arg-type]
    except TypeError:
        return None
    if batch_size is None or samples == 0:
        return None
    if batch_size == 1:
        return 'data.init_args.batch_size is 1'
    if loader.drop_last or samples % batch_size != 1:
        return None
    if samples == 1:
        return 'the training split holds 1 tile per process'
    return (
        f'{samples} training samples per process in batches of {batch_size} '
        f'leave a last batch of 1'
    )


def _is_norm(module: nn.Module, parameter_name: str) -> bool:
    owner_name = parameter_name.rpartition('.')[0]
    owner = module.get_submodule(owner_name) if owner_name else module
    norms: Sequence[type[nn.Module]] = (
        nn.modules.batchnorm._NormBase,
        nn.GroupNorm,
        nn.LayerNorm,
    )
    return isinstance(owner, tuple(norms))


#: The older name of `SatCLIPPretraining` (the same class, without a warning):
#: the class path ``satclip_tg.tasks.SatCLIPTask`` of configs and checkpoints
#: saved before the rename.
SatCLIPTask = SatCLIPPretraining
