"""satclip-tg: SatCLIP location encoders as a plugin-based TorchGeo extension.

Coordinates are always ``(N, 2)`` float tensors of **(longitude, latitude) in
degrees, in that order**.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from ._lazy import lazy_attributes

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

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY_NAMES)
