"""Datasets for SatCLIP pretraining."""

from .s2_100k import (
    SatCLIPDatasetNotFoundError,
    SatCLIPImageryDataset,
    TileCheckError,
    TileCheckReport,
    UnreadableTileError,
    UnreadableTileWarning,
)

__all__ = [
    'SatCLIPDatasetNotFoundError',
    'SatCLIPImageryDataset',
    'TileCheckError',
    'TileCheckReport',
    'UnreadableTileError',
    'UnreadableTileWarning',
]
