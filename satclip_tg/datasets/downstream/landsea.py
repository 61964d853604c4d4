"""The land/sea downstream data set (NOAA GLOBE land mask)."""

import pathlib

import numpy as np
from numpy.typing import NDArray

from .base import PackagedDownstreamDataset
from .readers import is_land

__all__ = ['LandSea']


class LandSea(PackagedDownstreamDataset):
    """Land or sea, by NOAA GLOBE's 30 arc-second mask, points over the globe.

    Classification (0 sea, 1 land). Source: NOAA GLOBE (public domain) as
    packaged by ``global-land-mask==1.0.0`` (MIT). Caveats: most lakes count
    as land; about 29 % of an area-uniform sample is land.
    """

    name = 'land_sea'
    task_type = 'classification'
    description = 'land or sea (NOAA GLOBE 30 arc-second mask)'
    source_keys = ('landmask',)
    target = 'land or sea'

    def __init__(
        self, land_only: bool = False, cache_dir: str | pathlib.Path | None = None
    ) -> None:
        """Initialize the downstream data set.

        Args:
            land_only: Must be false: the labels need sea points too.
            cache_dir: The benchmark cache folder.

        Raises:
            ValueError: If ``land_only`` is true.
        """
        if land_only:
            raise ValueError(
                'land_sea samples the whole globe; land_only must be false'
            )
        super().__init__(land_only=False, cache_dir=cache_dir)

    @property
    def classes(self) -> tuple[str, ...]:
        """``('sea', 'land')``."""
        return ('sea', 'land')

    def label(
        self, coords: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Label points (see `PackagedDownstreamDataset.label`).

        Args:
            coords: ``(N, 2)`` (lon, lat) in degrees.

        Returns:
            0/1 labels and validity.
        """
        land = is_land(coords, self.cache_dir)
        return land.astype(np.int64), np.ones(len(coords), dtype=bool)
