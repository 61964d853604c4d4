"""Look-ups of registered location components, and building encoders from them.

The functions here find positional encodings and location networks by name in
the plugin registry (`satclip_tg.plugins.get_registry`), built-ins and
installed plugins alike, and assemble a `LocationEncoder` from them; the
encoder class itself lives in `satclip_tg.location.encoder`.
"""

from collections.abc import Mapping
from typing import Any

from torch import nn

from ..plugins import get_registry
from .encoder import LocationEncoder

__all__ = [
    'build_location_encoder',
    'get_network',
    'get_positional_encoding',
    'list_networks',
    'list_positional_encodings',
]


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
