"""Batch transforms of satclip-tg: preprocessing, augmentation, reproducible views."""

from .augmentation import (
    B10_INDEX,
    SatCLIPBatchAugmentation,
    ViewParameters,
    centre_views,
    jitter_points,
    random_views,
    seeded_views,
)
from .location_embedding import LocationEmbedding

__all__ = [
    'B10_INDEX',
    'LocationEmbedding',
    'SatCLIPBatchAugmentation',
    'ViewParameters',
    'centre_views',
    'jitter_points',
    'random_views',
    'seeded_views',
]
