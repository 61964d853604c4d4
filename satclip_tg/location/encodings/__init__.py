"""Positional encodings: fixed maps from (lon, lat) to feature vectors."""

from .base import PositionalEncoding
from .spherical_harmonics import SphericalHarmonics

__all__ = ['PositionalEncoding', 'SphericalHarmonics']
