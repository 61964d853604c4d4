"""Data sets: SatCLIP pretraining imagery, labelled points, downstream data.

The downstream data sets are in `satclip_tg.datasets.downstream`; the
geographic splits in `satclip_tg.datasets.splits`; the Blue Marble builder in
`satclip_tg.datasets.bluemarble`.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers
    from .bluemarble_landcover import BlueMarbleLandCover
    from .points import PointLabelDataset
    from .s2_100k import (
        SatCLIPDatasetNotFoundError,
        SatCLIPImageryDataset,
        TileCheckError,
        TileCheckReport,
        UnreadableTileError,
        UnreadableTileWarning,
    )

# Imported on first access (PEP 562): the plugin registry imports
# `satclip_tg.datasets.downstream.hooks`, and with it this package, which must
# not load TorchGeo's data sets, rasterio and matplotlib for that.
_LAZY_NAMES = {
    'BlueMarbleLandCover': 'satclip_tg.datasets.bluemarble_landcover',
    'PointLabelDataset': 'satclip_tg.datasets.points',
    'SatCLIPDatasetNotFoundError': 'satclip_tg.datasets.s2_100k',
    'SatCLIPImageryDataset': 'satclip_tg.datasets.s2_100k',
    'TileCheckError': 'satclip_tg.datasets.s2_100k',
    'TileCheckReport': 'satclip_tg.datasets.s2_100k',
    'UnreadableTileError': 'satclip_tg.datasets.s2_100k',
    'UnreadableTileWarning': 'satclip_tg.datasets.s2_100k',
}

__all__ = [
    'BlueMarbleLandCover',
    'PointLabelDataset',
    'SatCLIPDatasetNotFoundError',
    'SatCLIPImageryDataset',
    'TileCheckError',
    'TileCheckReport',
    'UnreadableTileError',
    'UnreadableTileWarning',
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY_NAMES)
