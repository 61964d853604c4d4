"""satclip-tg plugin: GeoCLIP-style multi-scale random Fourier features (``rff``)."""

from .encoding import RandomFourierFeatures, equal_earth

__all__ = ['RandomFourierFeatures', 'equal_earth']
