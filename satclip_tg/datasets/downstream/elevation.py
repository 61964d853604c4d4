"""The elevation downstream data set (pvlib's altitude grid)."""

import numpy as np
from numpy.typing import NDArray

from .base import PackagedDownstreamDataset
from .readers import altitude

__all__ = ['Elevation']


class Elevation(PackagedDownstreamDataset):
    """Elevation above sea level (m), land points.

    Regression. Source: ``pvlib==0.16.1``'s ``Altitude.h5`` (BSD-3-Clause),
    1/12 deg, quantised to 28 m steps (metres = 28 v - 450). Caveats: the grid
    has no values over Antarctica and marks coarse coastal cells as ocean;
    those points are dropped (and replaced by further draws).
    """

    name = 'elevation'
    task_type = 'regression'
    description = 'elevation above sea level (pvlib 1/12 deg grid)'
    source_keys = ('altitude',)
    modules = ('h5py',)
    target = 'm'

    def label(
        self, coords: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Label points (see `PackagedDownstreamDataset.label`).

        Args:
            coords: ``(N, 2)`` (lon, lat) in degrees.

        Returns:
            Elevations and validity.
        """
        return altitude(coords, self.cache_dir)
