"""LocationEncoder: a positional encoding followed by a network."""

import copy
import importlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .coordinates import validate_coordinates

__all__ = ['LocationEncoder', 'encoder_device', 'encoder_dtype']

# The look-ups moved to `satclip_tg.location.api`; these names stay importable
# from here. They are imported by name on first access, because api imports
# this module for `LocationEncoder`.
_API_NAMES = frozenset(
    {
        'build_location_encoder',
        'get_network',
        'get_positional_encoding',
        'list_networks',
        'list_positional_encodings',
    }
)


def encoder_dtype(
    encoder: nn.Module, default: torch.dtype = torch.float32
) -> torch.dtype:
    """The dtype of a module's first floating-point parameter.

    Args:
        encoder: A module.
        default: Returned when the module has no floating-point parameter.

    Returns:
        The dtype.
    """
    for parameter in encoder.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return default


def encoder_device(encoder: nn.Module) -> torch.device:
    """The device of a module's parameters (CPU if it has none).

    Args:
        encoder: A module.

    Returns:
        The device.
    """
    for parameter in encoder.parameters():
        return parameter.device
    return torch.device('cpu')


class LocationEncoder(nn.Module):
    """Map (lon, lat) in degrees to an embedding.

    ``forward(coords)`` takes an ``(N, 2)`` float tensor of **(longitude,
    latitude) in degrees, in that order**, validates it, encodes it with
    `positional_encoding` and maps the features to ``(N, embed_dim)``
    with `network`. Features are cast to the network's dtype, so a
    float32 network accepts float64 coordinates and vice versa.
    """

    def __init__(
        self,
        positional_encoding: nn.Module,
        network: nn.Module,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        """Initialize a location encoder from its two parts.

        Args:
            positional_encoding: Module with an ``embedding_dim`` attribute that
                maps ``(N, 2)`` coordinates to ``(N, embedding_dim)`` features.
            network: Module mapping those features to embeddings.
            config: The registry names and hyperparameters the encoder was built
                from, as recorded by `build_location_encoder`; stored in
                checkpoints so the encoder can be rebuilt on its own.
        """
        super().__init__()
        self.positional_encoding = positional_encoding
        self.network = network
        self.config: dict[str, Any] | None = (
            copy.deepcopy(dict(config)) if config is not None else None
        )

    @property
    def embed_dim(self) -> int | None:
        """Size of the output embedding, without running the encoder.

        Read from `config` when recorded there, else from the network's
        ``dim_out`` attribute (set by `SirenNet`); ``None`` when neither says.
        """
        if self.config is not None:
            return int(self.config['embed_dim'])
        width = getattr(self.network, 'dim_out', None)
        if isinstance(width, int) and not isinstance(width, bool):
            return width
        return None

    def forward(self, coords: Tensor) -> Tensor:
        """Embed coordinates.

        Args:
            coords: ``(N, 2)`` float tensor of (lon, lat) in degrees.

        Returns:
            ``(N, embed_dim)`` embeddings in the network's dtype.

        Raises:
            TypeError: If ``coords`` is not a floating-point tensor.
            ValueError: If the shape is wrong or a coordinate is invalid.
        """
        # Validated here too: plugin encodings need not derive from
        # PositionalEncoding, and the contract holds for every encoder.
        features: Tensor = self.positional_encoding(validate_coordinates(coords))
        dtype = encoder_dtype(self.network, default=features.dtype)
        if features.dtype != dtype:
            features = features.to(dtype)
        out: Tensor = self.network(features)
        return out


def __getattr__(name: str) -> Any:
    """Forward the look-ups that moved to `satclip_tg.location.api`.

    Args:
        name: The attribute.

    Returns:
        Its value.

    Raises:
        AttributeError: If the module has no such attribute.
    """
    if name in _API_NAMES:
        return getattr(importlib.import_module('satclip_tg.location.api'), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
