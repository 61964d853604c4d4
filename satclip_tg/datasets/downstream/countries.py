"""Downstream data sets from Natural Earth countries: country and continent."""

import numpy as np
from numpy.typing import NDArray

from .base import PackagedDownstreamDataset
from .readers import country_index, natural_earth_countries

__all__ = ['Continent', 'Country']


class Country(PackagedDownstreamDataset):
    """Country (177 Natural Earth 1:110m countries), land points.

    Classification. Source: Natural Earth admin-0 countries at 1:110m (public
    domain), the ``naturalearth_lowres`` shapefile shipped in the pyogrio
    wheel (the same file as geopandas 0.14's dataset). Caveats: coarse
    polygons; land points in no polygon (small islands, coast mismatches) are
    dropped; countries are imbalanced (Russia, Antarctica and Canada dominate
    an area-uniform sample).
    """

    name = 'country'
    task_type = 'classification'
    description = 'country (Natural Earth 1:110m, 177 countries)'
    source_keys = ('naturalearth',)
    target = 'country'

    @property
    def classes(self) -> tuple[str, ...]:
        """The country names in file order."""
        return tuple(natural_earth_countries(self.cache_dir)[0])

    def label(
        self, coords: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Label points (see `PackagedDownstreamDataset.label`).

        Args:
            coords: ``(N, 2)`` (lon, lat) in degrees.

        Returns:
            Country indices and validity.
        """
        index = country_index(coords, self.cache_dir)
        return np.maximum(index, 0), index >= 0


class Continent(PackagedDownstreamDataset):
    """Continent of the containing Natural Earth country, land points.

    Classification with 8 classes (Natural Earth's continents, including
    'Seven seas (open ocean)' for remote islands). Source and caveats as
    `Country`. Under leave-one-continent-out every fold is skipped: the held
    out continent is the label.
    """

    name = 'continent'
    task_type = 'classification'
    description = 'continent (Natural Earth)'
    source_keys = ('naturalearth',)
    target = 'continent'

    @property
    def classes(self) -> tuple[str, ...]:
        """The continent names, sorted."""
        return tuple(sorted(set(natural_earth_countries(self.cache_dir)[1])))

    def label(
        self, coords: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Label points (see `PackagedDownstreamDataset.label`).

        Args:
            coords: ``(N, 2)`` (lon, lat) in degrees.

        Returns:
            Continent indices and validity.
        """
        _, continents, _ = natural_earth_countries(self.cache_dir)
        names = self.classes
        index = country_index(coords, self.cache_dir)
        lookup = np.array([names.index(c) for c in continents], dtype=np.int64)
        return lookup[np.maximum(index, 0)], index >= 0
