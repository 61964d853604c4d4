"""Datasets for SatCLIP pretraining."""

from .s2_100k import (
    SatCLIPDatasetNotFoundError,
    SatCLIPImageryDataset,
    UnreadableTileError,
    UnreadableTileWarning,
)

__all__ = [
    'SatCLIPDatasetNotFoundError',
    'SatCLIPImageryDataset',
    'UnreadableTileError',
    'UnreadableTileWarning',
]
