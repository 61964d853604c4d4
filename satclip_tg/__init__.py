"""satclip-tg: SatCLIP location encoders as a plugin-based TorchGeo extension.

Coordinates are always ``(N, 2)`` float tensors of **(longitude, latitude) in
degrees, in that order**.
"""

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers
    from .location.api import (
        build_location_encoder,
        get_network,
        get_positional_encoding,
        list_networks,
        list_positional_encodings,
    )
    from .location.coordinates import validate_coordinates
    from .location.encoder import LocationEncoder
    from .pretrained import load_location_encoder, load_satclip

try:
    __version__ = version('satclip-tg')
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = '0.0.0'

# The public names, imported on first access (PEP 562): importing satclip_tg,
# as `satclip-tg --help` does, must not import torch.
_LAZY_NAMES = {
    'LocationEncoder': 'satclip_tg.location.encoder',
    'build_location_encoder': 'satclip_tg.location.api',
    'get_network': 'satclip_tg.location.api',
    'get_positional_encoding': 'satclip_tg.location.api',
    'list_networks': 'satclip_tg.location.api',
    'list_positional_encodings': 'satclip_tg.location.api',
    'load_location_encoder': 'satclip_tg.pretrained',
    'load_satclip': 'satclip_tg.pretrained',
    'validate_coordinates': 'satclip_tg.location.coordinates',
}

__all__ = [
    'LocationEncoder',
    '__version__',
    'build_location_encoder',
    'get_network',
    'get_positional_encoding',
    'list_networks',
    'list_positional_encodings',
    'load_location_encoder',
    'load_satclip',
    'validate_coordinates',
]


def __getattr__(name: str) -> Any:
    """Import a public name on first access.

    Args:
        name: The attribute.

    Returns:
        Its value.

    Raises:
        AttributeError: If the package has no such attribute.
    """
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The package's attributes, the lazy public names included.

    Returns:
        The names.
    """
    return sorted({*globals(), *_LAZY_NAMES})
