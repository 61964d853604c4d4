"""segmentation-models-pytorch encoders as SatCLIP image backbones.

An `SMPImageEncoder` wraps the encoder half of a segmentation-models-pytorch
(smp) model: the images go through the encoder, its deepest feature map is
averaged over space, and a trainable linear projection maps the pooled vector
to the embedding. smp encoders take any number of input bands; with
``freeze=True`` only the projection trains and the encoder stays in eval mode,
exactly like satclip-tg's built-in backbones.

Weights are never downloaded: ``weights`` is ``None`` (random initialisation)
or the path of a local checkpoint.
"""

import difflib
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor, nn

from satclip_tg.image.backbones import (
    freeze_module,
    train_keeping_frozen,
)
from satclip_tg.image.backbones import read_state_dict as satclip_read_state_dict

__all__ = [
    'CURATED_ENCODERS',
    'SMPImageEncoder',
    'build_encoder',
    'load_encoder_weights',
    'read_state_dict',
    'smp_backbone',
]

#: smp encoders registered by name as ``smp:<encoder>``; every other smp encoder
#: is available through the generic ``smp`` backbone and ``encoder_name``.
CURATED_ENCODERS = (
    'resnet18',
    'resnet34',
    'resnet50',
    'resnext50_32x4d',
    'efficientnet-b0',
    'mobilenet_v2',
    'densenet121',
    'mit_b0',
)

# Prefixes under which an encoder's own keys sit in a saved state dict: a
# satclip-tg Lightning checkpoint, an SMPImageEncoder or a whole smp model.
_STATE_DICT_PREFIXES = ('image_encoder.encoder.', 'encoder.')
# Classifier heads of the source networks, which smp encoders do not have.
_HEAD_PREFIXES = ('fc.', '_fc.', 'classifier.', 'head.', 'last_linear.')


def build_encoder(
    encoder_name: str,
    in_channels: int,
    depth: int = 5,
    encoder_args: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Build an smp encoder with random weights (never downloads).

    Args:
        encoder_name: An smp encoder name (``smp.encoders.get_encoder_names()``)
            or ``tu-<timm model>`` for any timm model with a feature-pyramid
            interface.
        in_channels: Number of image bands.
        depth: Number of encoder stages, 1 to 5.
        encoder_args: Further keyword arguments of
            ``smp.encoders.get_encoder``, e.g. ``{'drop_path_rate': 0.1}`` for a
            ``tu-`` encoder.

    Returns:
        The encoder; its ``out_channels`` lists the channels of its outputs.

    Raises:
        ValueError: If the encoder name is unknown; the message lists close
            matches.
    """
    import segmentation_models_pytorch as smp

    names = list(smp.encoders.get_encoder_names())
    if not encoder_name.startswith('tu-') and encoder_name not in names:
        close = difflib.get_close_matches(encoder_name, names, n=3)
        hint = f' Did you mean {" or ".join(map(repr, close))}?' if close else ''
        raise ValueError(
            f'unknown segmentation-models-pytorch encoder {encoder_name!r}.{hint} '
            f'Use a name from smp.encoders.get_encoder_names() or tu-<timm model>.'
        )
    encoder: nn.Module = smp.encoders.get_encoder(
        encoder_name,
        in_channels=in_channels,
        depth=depth,
        weights=None,
        **dict(encoder_args or {}),
    )
    return encoder


def read_state_dict(path: str | pathlib.Path) -> dict[str, Tensor]:
    """Read the encoder's state dict from a local checkpoint.

    Accepted: a ``.safetensors`` file (as smp publishes its weights), or a file
    written by `torch.save` holding a state dict or a Lightning checkpoint
    (with the state dict under ``state_dict``). Keys under
    ``image_encoder.encoder.`` (a satclip-tg checkpoint) or ``encoder.`` (an
    `SMPImageEncoder` or a whole smp model) are taken with that prefix
    removed; other keys are taken as they are.

    Args:
        path: The checkpoint file.

    Returns:
        The state dict.

    Raises:
        ValueError: If the file does not hold a state dict.
    """
    return satclip_read_state_dict(path, _STATE_DICT_PREFIXES)


def _try_load(encoder: nn.Module, state: Mapping[str, Tensor]) -> str | None:
    expected = encoder.state_dict()
    if expected and all(key.startswith('model.') for key in expected):
        # A tu- encoder keeps the timm model under "model.".
        if not any(key.startswith('model.') for key in state):
            state = {f'model.{key}': value for key, value in state.items()}
    state = {
        key: value
        for key, value in state.items()
        if key in expected or not key.removeprefix('model.').startswith(_HEAD_PREFIXES)
    }
    try:
        # The encoder's own load_state_dict (strict): it renames legacy keys
        # where smp does so for its own weights.
        encoder.load_state_dict(state)
    except RuntimeError as error:
        message = ' '.join(str(error).split())
        return message if len(message) <= 600 else message[:600] + ' ...'
    return None


def load_encoder_weights(
    encoder_name: str,
    in_channels: int,
    weights: str | pathlib.Path,
    depth: int = 5,
    encoder_args: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Build an smp encoder and load a local checkpoint into it.

    The checkpoint's classifier head, if any, is ignored. A checkpoint of the
    same encoder with 3 input bands (e.g. ImageNet weights) also loads into an
    encoder with another number of bands: the first convolution is adapted as
    smp adapts its own pretrained weights (its 3 input filters are repeated
    cyclically over the new bands and scaled by ``3 / in_channels``).

    Args:
        encoder_name: The smp encoder name.
        in_channels: Number of image bands.
        weights: Path of the checkpoint (see `read_state_dict`).
        depth: Number of encoder stages.
        encoder_args: Further keyword arguments of ``smp.encoders.get_encoder``.

    Returns:
        The encoder with the checkpoint's weights.

    Raises:
        ValueError: If the file does not exist or does not fit the encoder.
    """
    path = pathlib.Path(weights).expanduser()
    if not path.is_file():
        raise ValueError(
            f'backbone weights {str(weights)!r} are not an existing file: '
            f'satclip-tg-smp loads weights only from a local checkpoint (a state '
            f'dict, a Lightning checkpoint or a .safetensors file) and never '
            f'downloads; use null for random initialisation'
        )
    state = read_state_dict(path)
    encoder = build_encoder(encoder_name, in_channels, depth, encoder_args)
    problem = _try_load(encoder, state)
    if problem is None:
        return encoder
    if in_channels != 3 and hasattr(encoder, 'set_in_channels'):
        rgb = build_encoder(encoder_name, 3, depth, encoder_args)
        if _try_load(rgb, state) is None:
            set_in_channels: Any = rgb.set_in_channels
            set_in_channels(in_channels, pretrained=True)
            return rgb
    raise ValueError(
        f'checkpoint {path} does not fit the {encoder_name} encoder with '
        f'{in_channels} bands (nor with 3): {problem}'
    )


class SMPImageEncoder(nn.Module):
    """An smp encoder, global average pooling and a trainable linear projection.

    ``forward`` maps ``(B, in_channels, H, W)`` images to ``(B, num_outputs)``:
    the encoder's deepest feature map is averaged over its height and width and
    projected by ``projection``. With ``freeze=True`` only the projection
    trains and the encoder stays in eval mode even while the task trains
    (BatchNorm keeps its statistics, dropout stays off).

    The constructor follows the satclip-tg backbone-factory contract, so the
    class itself is registered as the generic ``smp`` backbone, which takes the
    encoder name as an argument.
    """

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        weights: str | None = None,
        freeze: bool = True,
        encoder_name: str = 'resnet34',
        depth: int = 5,
        encoder_args: Mapping[str, Any] | None = None,
    ) -> None:
        """Build the encoder, load its weights and add the projection.

        Args:
            in_channels: Number of image bands.
            num_outputs: Size of the output embedding.
            weights: ``None`` (random initialisation) or the path of a local
                checkpoint of the encoder (see `load_encoder_weights`).
            freeze: Whether to train only the projection.
            encoder_name: An smp encoder name, or ``tu-<timm model>``.
            depth: Number of encoder stages, 1 to 5; fewer stages give
                shallower, cheaper features.
            encoder_args: Further keyword arguments of
                ``smp.encoders.get_encoder``.

        Raises:
            ValueError: If the encoder is unknown or the weights do not fit.
        """
        super().__init__()
        self.encoder_name = encoder_name
        self.freeze = freeze
        if weights is None:
            self.encoder = build_encoder(encoder_name, in_channels, depth, encoder_args)
        else:
            self.encoder = load_encoder_weights(
                encoder_name, in_channels, weights, depth, encoder_args
            )
        out_channels: Any = self.encoder.out_channels
        self.projection = nn.Linear(int(out_channels[-1]), num_outputs)
        if freeze:
            freeze_module(self.encoder)
        self.train(self.training)

    def train(self, mode: bool = True) -> 'SMPImageEncoder':
        """Set training mode, keeping a frozen encoder in eval mode.

        Args:
            mode: Whether to train.

        Returns:
            This module.
        """
        super().train(mode)
        if self.freeze:
            train_keeping_frozen(self.encoder, mode)
        return self

    def forward(self, images: Tensor) -> Tensor:
        """Embed images.

        Args:
            images: ``(B, in_channels, H, W)`` images.

        Returns:
            ``(B, num_outputs)`` embeddings.
        """
        features: Tensor = self.encoder(images)[-1]
        out: Tensor = self.projection(features.mean(dim=(-2, -1)))
        return out

    def extra_repr(self) -> str:
        """Summarize the configuration.

        Returns:
            The encoder name and whether it is frozen.
        """
        return f'encoder_name={self.encoder_name!r}, freeze={self.freeze}'


def smp_backbone(encoder_name: str) -> Callable[..., SMPImageEncoder]:
    """A backbone factory for one smp encoder, as the plugin hook expects.

    Args:
        encoder_name: The smp encoder name, e.g. ``'resnet34'``.

    Returns:
        ``factory(in_channels, num_outputs, weights=None, freeze=True, depth=5,
        encoder_args=None)`` returning an `SMPImageEncoder`.
    """

    def factory(
        in_channels: int,
        num_outputs: int,
        weights: str | None = None,
        freeze: bool = True,
        depth: int = 5,
        encoder_args: Mapping[str, Any] | None = None,
    ) -> SMPImageEncoder:
        return SMPImageEncoder(
            in_channels,
            num_outputs,
            weights,
            freeze,
            encoder_name=encoder_name,
            depth=depth,
            encoder_args=encoder_args,
        )

    factory.__name__ = factory.__qualname__ = f'smp_{encoder_name}'
    factory.__doc__ = (
        f'Build an SMPImageEncoder around the smp {encoder_name!r} encoder.'
    )
    return factory
