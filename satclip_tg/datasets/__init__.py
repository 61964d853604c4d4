"""Data sets: SatCLIP pretraining imagery, labelled points, downstream data.

The downstream data sets are in `satclip_tg.datasets.downstream`; the
geographic splits in `satclip_tg.datasets.splits`; the Blue Marble builder in
`satclip_tg.datasets.bluemarble`.
"""

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    """Import a public name on first access.

    Args:
        name: The attribute.

    Returns:
        Its value.

    Raises:
        AttributeError: If the package has no such attribute.
    """
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The package's attributes, the lazy public names included.

    Returns:
        The names.
    """
    return sorted({*globals(), *__all__})
