"""LocationEncoder: a positional encoding followed by a network."""

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ..plugins import get_registry
from .coordinates import validate_coordinates

__all__ = [
    'LocationEncoder',
    'build_location_encoder',
    'encoder_device',
    'encoder_dtype',
    'get_network',
    'get_positional_encoding',
    'list_networks',
    'list_positional_encodings',
]


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
        """Size of the output embedding, when recorded in `config`."""
        if self.config is None:
            return None
        return int(self.config['embed_dim'])

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


def get_positional_encoding(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered positional encoding by name.

    Args:
        name: Registry name, e.g. ``'sphericalharmonics'`` or ``'wrap'``.
        **kwargs: Hyperparameters of that encoding.

    Returns:
        The encoding; its ``embedding_dim`` attribute gives the feature count.

    Raises:
        UnknownComponentError: If no encoding has that name.
    """
    encoding: nn.Module = (
        get_registry().get('positional_encoding', name).factory(**kwargs)
    )
    _embedding_dim(encoding, name)
    return encoding


def _embedding_dim(encoding: nn.Module, name: str) -> int:
    dim = getattr(encoding, 'embedding_dim', None)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise TypeError(
            f'positional encoding {name!r} did not set a positive integer '
            f'embedding_dim (got {dim!r}); its plugin is broken'
        )
    return dim


def get_network(name: str, dim_in: int, dim_out: int, **kwargs: Any) -> nn.Module:
    """Build a registered location network by name.

    Args:
        name: Registry name, e.g. ``'siren'``.
        dim_in: Number of input features.
        dim_out: Number of output features.
        **kwargs: Hyperparameters of that network.

    Returns:
        The network.

    Raises:
        UnknownComponentError: If no network has that name.
    """
    network: nn.Module = (
        get_registry().get('network', name).factory(dim_in, dim_out, **kwargs)
    )
    return network


def list_positional_encodings() -> list[str]:
    """Names of all registered positional encodings, plugins included.

    Returns:
        Sorted names.
    """
    return get_registry().names('positional_encoding')


def list_networks() -> list[str]:
    """Names of all registered location networks, plugins included.

    Returns:
        Sorted names.
    """
    return get_registry().names('network')


def build_location_encoder(
    positional_encoding: str,
    network: str,
    *,
    embed_dim: int = 256,
    positional_encoding_args: Mapping[str, Any] | None = None,
    network_args: Mapping[str, Any] | None = None,
) -> LocationEncoder:
    """Build a location encoder from registered components.

    The SatCLIP configuration of the released models is::

        build_location_encoder(
            'sphericalharmonics', 'siren', embed_dim=256,
            positional_encoding_args={'legendre_polys': 40},
            network_args={'hidden_dim': 512, 'num_hidden_layers': 2},
        )

    Args:
        positional_encoding: Registry name of the encoding.
        network: Registry name of the network.
        embed_dim: Size of the output embedding.
        positional_encoding_args: Hyperparameters of the encoding.
        network_args: Hyperparameters of the network (besides its input and
            output sizes, which are derived).

    Returns:
        The encoder, with its recipe in `LocationEncoder.config`.

    Raises:
        UnknownComponentError: If a name is not registered.
        ValueError: If ``embed_dim`` is not positive.
    """
    if isinstance(embed_dim, bool) or not isinstance(embed_dim, int) or embed_dim < 1:
        raise ValueError(f'embed_dim must be a positive integer, got {embed_dim!r}')
    encoding_args = dict(positional_encoding_args or {})
    net_args = dict(network_args or {})
    encoding = get_positional_encoding(positional_encoding, **encoding_args)
    dim_in = _embedding_dim(encoding, positional_encoding)
    net = get_network(network, dim_in, embed_dim, **net_args)
    config = {
        'positional_encoding': positional_encoding,
        'positional_encoding_args': encoding_args,
        'network': network,
        'network_args': net_args,
        'embed_dim': embed_dim,
    }
    return LocationEncoder(encoding, net, config=config)
