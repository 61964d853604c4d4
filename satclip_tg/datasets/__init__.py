"""Datasets for SatCLIP pretraining."""

from .bluemarble_landcover import BlueMarbleLandCover
from .s2_100k import (
    SatCLIPDatasetNotFoundError,
    SatCLIPImageryDataset,
    TileCheckError,
    TileCheckReport,
    UnreadableTileError,
    UnreadableTileWarning,
)

__all__ = [
    'BlueMarbleLandCover',
    'SatCLIPDatasetNotFoundError',
    'SatCLIPImageryDataset',
    'TileCheckError',
    'TileCheckReport',
    'UnreadableTileError',
    'UnreadableTileWarning',
]
