"""Image backbones for the image side of SatCLIP.

A backbone maps ``(B, C, H, W)`` images to ``(B, embed_dim)`` embeddings: a
timm network whose classifier is replaced by a trainable linear projection.
The three built-ins are the SSL4EO-S12 architectures of the released models
(``resnet18``, ``resnet50``, ``vit_small_patch16_224``); plugins add more
through the ``satclip_tg_image_backbones`` hook, and any other timm model name
is built the same way on demand (`satclip_tg.image.timm_models`).
"""

import hashlib
import os
import pathlib
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

import timm
import torch
from torch import Tensor, nn

__all__ = [
    'ImageEncoder',
    'backbone_digest',
    'backbone_feature_dim',
    'backbone_features',
    'backbone_projection',
    'freeze_module',
    'load_backbone_weights',
    'read_state_dict',
    'timm_backbone',
    'train_keeping_frozen',
]

# Prefixes under which a backbone's own keys may sit in a saved state dict:
# Lightning task checkpoints (``model.``), SatCLIP's ``model.visual.`` and ours.
_STATE_DICT_PREFIXES = ('image_encoder.model.', 'model.visual.', 'model.', 'backbone.')


def freeze_module(frozen: nn.Module, trainable: Sequence[nn.Module] = ()) -> None:
    """Stop the gradients of a frozen backbone, keeping its trainable parts.

    Args:
        frozen: The module whose parameters stop training.
        trainable: Parts of ``frozen`` (e.g. the projection) that keep training.
    """
    frozen.requires_grad_(False)
    for module in trainable:
        module.requires_grad_(True)


def train_keeping_frozen(
    frozen: nn.Module, mode: bool, trainable: Sequence[nn.Module] = ()
) -> None:
    """Keep a frozen backbone in eval mode whatever the training mode.

    Call it from a backbone's ``train`` after ``super().train(mode)``: the
    frozen part keeps its BatchNorm running statistics and its dropout off,
    and only ``trainable`` follows ``mode``.

    Args:
        frozen: The frozen module.
        mode: The training mode asked for.
        trainable: Parts of ``frozen`` that follow ``mode``.
    """
    frozen.eval()
    for module in trainable:
        module.train(mode)


class ImageEncoder(nn.Module):
    """A timm backbone with its classifier replaced by a linear projection.

    When ``freeze`` is true, only the projection trains and the rest of the
    network stays in eval mode even while the task trains: BatchNorm keeps its
    pretrained running statistics and dropout stays off. (The reference
    leaves a frozen ResNet in train mode, so its BatchNorm layers normalise
    with batch statistics; that is a quirk, not a design.)
    """

    def __init__(
        self,
        model_name: str,
        in_channels: int,
        num_outputs: int,
        weights: str | None = None,
        freeze: bool = True,
        **timm_args: Any,
    ) -> None:
        """Build the backbone and load its weights.

        Args:
            model_name: A timm model name, e.g. ``'resnet18'``.
            in_channels: Number of image bands.
            num_outputs: Size of the output embedding.
            weights: ``None`` (random initialisation), a TorchGeo weights name
                such as ``'ResNet18_Weights.SENTINEL2_ALL_MOCO'``, or the path
                of a checkpoint holding the backbone's state dict.
            freeze: Whether to train only the projection.
            **timm_args: Further arguments of `timm.create_model`, e.g.
                ``img_size`` for a ViT at another input size (pretrained position
                embeddings are then resampled) or ``drop_path_rate``.

        Raises:
            ValueError: If the weights cannot be resolved or do not fit.
        """
        super().__init__()
        self.model_name = model_name
        self.freeze = freeze
        self.model = timm.create_model(
            model_name,
            pretrained=False,
            in_chans=in_channels,
            num_classes=num_outputs,
            **timm_args,
        )
        get_classifier: Any = self.model.get_classifier
        if not isinstance(get_classifier(), nn.Module):
            # e.g. distilled DeiTs: two heads whose outputs are averaged.
            raise ValueError(
                f'timm model {model_name!r} has no single classifier layer to '
                f'replace by the projection, so it cannot be an image backbone; '
                f'choose another architecture'
            )
        if weights is not None:
            load_backbone_weights(self.model, model_name, in_channels, weights)
        if freeze:
            freeze_module(self.model, trainable=(self.projection,))
            self.train(self.training)

    @property
    def projection(self) -> nn.Module:
        """The trainable linear projection (timm's classifier)."""
        get_classifier: Any = self.model.get_classifier
        classifier: nn.Module = get_classifier()
        return classifier

    def train(self, mode: bool = True) -> 'ImageEncoder':
        """Set training mode, keeping a frozen backbone in eval mode.

        Args:
            mode: Whether to train.

        Returns:
            This module.
        """
        super().train(mode)
        if self.freeze:
            train_keeping_frozen(self.model, mode, trainable=(self.projection,))
        return self

    @property
    def feature_dim(self) -> int:
        """Width of the pooled features that enter the projection."""
        # Not always timm's ``num_features``: MobileNetV3 and others apply a
        # head layer after pooling, whose width is ``head_hidden_size``.
        projection = self.projection
        if isinstance(projection, nn.Linear):
            return projection.in_features
        model: Any = self.model
        return int(getattr(model, 'head_hidden_size', None) or model.num_features)

    def encode_features(self, images: Tensor) -> Tensor:
        """The pooled features before the projection (what the feature cache keeps).

        Args:
            images: ``(B, in_channels, H, W)`` images.

        Returns:
            ``(B, feature_dim)`` features; ``projection`` of them is `forward`.
        """
        model: Any = self.model
        features: Tensor = model.forward_head(
            model.forward_features(images), pre_logits=True
        )
        return features

    def forward(self, images: Tensor) -> Tensor:
        """Embed images.

        Args:
            images: ``(B, in_channels, H, W)`` images.

        Returns:
            ``(B, num_outputs)`` embeddings.
        """
        out: Tensor = self.model(images)
        return out


def backbone_projection(backbone: nn.Module) -> nn.Module:
    """The trainable final layer of an image backbone, its ``projection``.

    Args:
        backbone: An image backbone from the registry.

    Returns:
        The module.

    Raises:
        TypeError: If the backbone has no ``projection`` module.
    """
    projection = getattr(backbone, 'projection', None)
    if not isinstance(projection, nn.Module):
        raise TypeError(
            f'the image backbone {type(backbone).__name__} has no `projection` '
            f'module, so its pre-projection features cannot be told apart from '
            f'its output; give it a `projection` attribute (the trainable final '
            f'layer) or an `encode_features(images)` method, as the plugin '
            f'contract describes'
        )
    return projection


def backbone_features(backbone: nn.Module, images: Tensor) -> Tensor:
    """The pooled features a backbone feeds into its projection.

    Uses the backbone's ``encode_features`` method when it has one (the
    built-ins do). Otherwise the input of its ``projection`` module is
    captured during an ordinary forward pass, which works for any backbone
    whose ``forward`` ends with ``projection(features)``.

    Args:
        backbone: An image backbone from the registry.
        images: ``(B, C, H, W)`` model input.

    Returns:
        ``(B, D)`` features, such that ``projection(features)`` is the
        backbone's output.

    Raises:
        TypeError: If the backbone has neither ``encode_features`` nor a
            ``projection`` module, or its projection does not take ``(B, D)``.
    """
    encode = getattr(backbone, 'encode_features', None)
    if callable(encode):
        features: Tensor = encode(images)
        return features
    captured: list[Tensor] = []

    def keep_input(module: nn.Module, args: tuple[Any, ...]) -> None:
        captured.append(args[0])

    handle = backbone_projection(backbone).register_forward_pre_hook(keep_input)
    try:
        backbone(images)
    finally:
        handle.remove()
    if len(captured) != 1 or captured[0].ndim != 2:
        raise TypeError(
            f'the projection of {type(backbone).__name__} was not called once on '
            f'(B, D) features; give the backbone an `encode_features(images)` '
            f'method'
        )
    return captured[0]


def backbone_feature_dim(backbone: nn.Module) -> int:
    """Width D of the features `backbone_features` returns.

    Args:
        backbone: An image backbone from the registry.

    Returns:
        ``backbone.feature_dim`` if set, else the projection's ``in_features``.

    Raises:
        TypeError: If neither is known.
    """
    width = getattr(backbone, 'feature_dim', None)
    if isinstance(width, int):
        return width
    projection = backbone_projection(backbone)
    if isinstance(projection, nn.Linear):
        return projection.in_features
    raise TypeError(
        f'the width of the features of {type(backbone).__name__} is unknown: give '
        f'it a `feature_dim` attribute'
    )


def _classifier_keys(model: nn.Module) -> set[str]:
    classifier = model.get_classifier()  # type: ignore[operator]
    names = {name for name, module in model.named_modules() if module is classifier}
    return {f'{name}.{key}' for name in names for key in classifier.state_dict()}


def read_state_dict(
    path: str | os.PathLike[str], prefixes: Sequence[str] = _STATE_DICT_PREFIXES
) -> dict[str, Tensor]:
    """Read a backbone's state dict from a checkpoint file.

    The file is a ``.safetensors`` file, or a `torch.save` file holding a
    state dict or a Lightning checkpoint with one under ``state_dict``; the
    latter is read with ``weights_only=True``, so no pickled code runs. The
    keys under the first of ``prefixes`` that occurs are taken, with that
    prefix removed; without any, all keys are taken as they are.

    Args:
        path: The checkpoint file.
        prefixes: Prefixes under which the backbone's keys may sit (by default
            those of satclip-tg, SatCLIP and Lightning checkpoints).

    Returns:
        The state dict.

    Raises:
        ValueError: If the file cannot be read or holds no state dict.
    """
    loaded: Any
    try:
        if pathlib.Path(path).suffix == '.safetensors':
            from safetensors.torch import load_file

            loaded = load_file(str(path), device='cpu')
        else:
            loaded = torch.load(path, map_location='cpu', weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as error:
        raise ValueError(f'cannot read checkpoint {path}: {error}') from error
    if isinstance(loaded, Mapping) and isinstance(loaded.get('state_dict'), Mapping):
        loaded = loaded['state_dict']
    if not isinstance(loaded, Mapping) or not all(
        isinstance(value, Tensor) for value in loaded.values()
    ):
        raise ValueError(
            f'checkpoint {path} does not hold a state dict (a mapping of names to '
            f'tensors) or a Lightning checkpoint with one under "state_dict"'
        )
    state = {str(key): value for key, value in loaded.items()}
    for prefix in prefixes:
        if any(key.startswith(prefix) for key in state):
            return {
                key[len(prefix) :]: value
                for key, value in state.items()
                if key.startswith(prefix)
            }
    return state


def load_backbone_weights(
    model: nn.Module, model_name: str, in_channels: int, weights: str
) -> None:
    """Load pretrained weights into a timm backbone, except its classifier.

    Args:
        model: The timm model (classifier already resized).
        model_name: Its timm name, checked against the weights' architecture.
        in_channels: Its number of input bands, checked against the weights.
        weights: A TorchGeo weights name or a checkpoint path.

    Raises:
        ValueError: If the weights are unknown, or do not match the model.
    """
    path = pathlib.Path(weights).expanduser()
    if path.is_file():
        state = read_state_dict(path)
        source = f'checkpoint {path}'
    else:
        from torchgeo.models import get_weight

        try:
            weight = get_weight(weights)
        except ValueError:
            raise ValueError(
                f'backbone weights {weights!r} are neither an existing checkpoint '
                f'file nor a TorchGeo weights name (such as '
                f"'ResNet18_Weights.SENTINEL2_ALL_MOCO'); use null for random "
                f'initialisation'
            ) from None
        _check_torchgeo_weights(weights, weight.meta, model_name, in_channels)
        state = weight.get_state_dict(progress=True)
        source = f'TorchGeo weights {weights}'
    classifier = _classifier_keys(model)
    state = {key: value for key, value in state.items() if key not in classifier}
    _resample_position_embedding(model, state)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [key for key in missing if key not in classifier]
    if missing or unexpected:
        raise ValueError(
            f'{source} does not fit a {model_name} backbone with {in_channels} '
            f'bands: missing keys {missing[:5]}, unexpected keys {unexpected[:5]}'
        )


def _check_torchgeo_weights(
    weights: str, meta: Mapping[str, Any], model_name: str, in_channels: int
) -> None:
    from timm.models import get_arch_name, is_model

    architecture = meta.get('model')
    # A pretrained tag ('resnet50.a1_in1k') only picks timm's default
    # configuration; the architecture is what the weights must fit.
    if architecture != get_arch_name(model_name):
        fix = (
            f'set the backbone to {architecture!r}'
            if isinstance(architecture, str) and is_model(architecture)
            else 'they are not for a timm architecture, so they cannot be '
            'loaded into an image backbone here'
        )
        raise ValueError(
            f'weights {weights} are for a {architecture} backbone, not '
            f'{model_name}: {fix}'
        )
    expected = meta.get('in_chans')
    if expected != in_channels:
        # TorchGeo's classification task would drop the pretrained first
        # layer and train a random one instead; a frozen backbone cannot train
        # it, so a clear refusal is better than silently useless features.
        raise ValueError(
            f'weights {weights} expect {expected} input bands, but in_channels '
            f'is {in_channels}: set in_channels to {expected} and give the '
            f'backbone data with those bands (S2-100K has 12 bands, 13 with '
            f'insert_zero_b10), or choose weights for {in_channels} bands'
        )


def _resample_position_embedding(model: nn.Module, state: dict[str, Tensor]) -> None:
    # A ViT built for another input size has a position-embedding grid of
    # another size; interpolate the pretrained one, as timm does for its own.
    target = getattr(model, 'pos_embed', None)
    source = state.get('pos_embed')
    if not isinstance(target, Tensor) or source is None or source.shape == target.shape:
        return
    from timm.layers.pos_embed import resample_abs_pos_embed

    patch_embed: Any = model.patch_embed
    state['pos_embed'] = resample_abs_pos_embed(
        source,
        new_size=list(patch_embed.grid_size),
        num_prefix_tokens=int(getattr(model, 'num_prefix_tokens', 1)),
    )


def timm_backbone(model_name: str) -> Any:
    """A backbone factory for a timm architecture, as the plugin hook expects.

    Args:
        model_name: The timm model name.

    Returns:
        ``factory(in_channels, num_outputs, weights=None, freeze=True,
        **timm_args)`` returning an `ImageEncoder`.
    """

    def factory(
        in_channels: int,
        num_outputs: int,
        weights: str | None = None,
        freeze: bool = True,
        **timm_args: Any,
    ) -> ImageEncoder:
        return ImageEncoder(
            model_name, in_channels, num_outputs, weights, freeze, **timm_args
        )

    factory.__name__ = factory.__qualname__ = model_name
    factory.__doc__ = f'Build an ImageEncoder around timm {model_name!r}.'
    return factory


def backbone_digest(backbone: nn.Module) -> str:
    """SHA-256 of a backbone's frozen weights and buffers (projection aside).

    Two backbones with the same digest compute the same features, so a
    feature cache records it and training on the cache checks it: this
    catches other weights, and randomly initialised backbones built under
    another seed.

    Args:
        backbone: An image backbone.

    Returns:
        The hex digest over the names, shapes, dtypes and bytes of every
        parameter and buffer outside ``projection``.
    """
    projection = getattr(backbone, 'projection', None)
    skip = (
        {id(t) for t in (*projection.parameters(), *projection.buffers())}
        if isinstance(projection, nn.Module)
        else set()
    )
    digest = hashlib.sha256()
    tensors = [*backbone.named_parameters(), *backbone.named_buffers()]
    for name, tensor in sorted(tensors, key=lambda item: item[0]):
        if id(tensor) in skip:
            continue
        data = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f'{name}|{tuple(tensor.shape)}|{tensor.dtype}|'.encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
