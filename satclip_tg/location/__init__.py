"""Everything that maps (lon, lat) to a vector: encodings, networks, encoders."""

from .api import (
    build_location_encoder,
    get_network,
    get_positional_encoding,
    list_networks,
    list_positional_encodings,
)
from .coordinates import validate_coordinates
from .encoder import LocationEncoder

__all__ = [
    'LocationEncoder',
    'build_location_encoder',
    'get_network',
    'get_positional_encoding',
    'list_networks',
    'list_positional_encodings',
    'validate_coordinates',
]
