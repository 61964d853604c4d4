"""satclip-tg: SatCLIP location encoders as a plugin-based TorchGeo extension.

Coordinates are always ``(N, 2)`` float tensors of **(longitude, latitude) in
degrees, in that order**.
"""

from importlib.metadata import PackageNotFoundError, version

from .location import (
    LocationEncoder,
    build_location_encoder,
    get_network,
    get_positional_encoding,
    list_networks,
    list_positional_encodings,
    validate_coordinates,
)
from .pretrained import load_location_encoder, load_satclip

try:
    __version__ = version('satclip-tg')
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = '0.0.0'

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
