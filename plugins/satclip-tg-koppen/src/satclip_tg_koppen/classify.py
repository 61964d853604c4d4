"""The five main Koppen-Geiger climate groups from monthly climatologies."""

import numpy as np
from numpy.typing import NDArray

__all__ = ['KOPPEN_GROUPS', 'koppen_groups']

#: Class names, in the order of the integer labels.
KOPPEN_GROUPS = ('A tropical', 'B arid', 'C temperate', 'D continental', 'E polar')

# Months of the warm half-year: April to September in the north, October to
# March in the south.
_NORTH_SUMMER = np.array(
    [False, False, False, True, True, True] * 1 + [True] * 3 + [False] * 3
)


def koppen_groups(
    temperature: NDArray[np.floating],
    precipitation: NDArray[np.floating],
    lat: NDArray[np.floating],
) -> NDArray[np.int64]:
    """Classify climates into the five main Koppen-Geiger groups.

    The rules of Beck et al. (2018, Scientific Data 5:180214), main groups
    only, applied in this order: E (polar) if the warmest month is below 10 deg
    C; B (arid) if the annual precipitation is below 10 times the dryness
    threshold; A (tropical) if the coldest month is at least 18 deg C; C
    (temperate) if the coldest month is above 0 deg C; D (continental)
    otherwise. The dryness threshold in mm is 2 MAT, plus 28 if at least 70 %
    of the precipitation falls in the winter half-year, plus 14 if neither half
    gets 70 % (MAT: mean annual temperature in deg C).

    Args:
        temperature: ``(12, N)`` monthly mean temperatures in deg C, January first.
        precipitation: ``(12, N)`` monthly precipitation totals in mm.
        lat: ``(N,)`` latitudes in degrees, to tell summer from winter.

    Returns:
        ``(N,)`` int64 indices into `KOPPEN_GROUPS`.

    Raises:
        ValueError: If the shapes do not fit.
    """
    temperature = np.asarray(temperature, dtype=np.float64)
    precipitation = np.asarray(precipitation, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    if temperature.shape != precipitation.shape or temperature.shape[:1] != (12,):
        raise ValueError(
            f'temperature and precipitation must both be (12, N), got '
            f'{temperature.shape} and {precipitation.shape}'
        )
    if lat.shape != temperature.shape[1:]:
        raise ValueError(f'lat must be (N,) = {temperature.shape[1:]}, got {lat.shape}')
    warmest = temperature.max(axis=0)
    coldest = temperature.min(axis=0)
    mean_temperature = temperature.mean(axis=0)
    annual = precipitation.sum(axis=0)
    summer = np.where(
        lat[None, :] >= 0, _NORTH_SUMMER[:, None], ~_NORTH_SUMMER[:, None]
    )
    summer_share = np.where(summer, precipitation, 0.0).sum(axis=0) / np.maximum(
        annual, 1e-9
    )
    threshold = 2 * mean_temperature + np.where(
        summer_share >= 0.7, 0.0, np.where(summer_share <= 0.3, 28.0, 14.0)
    )
    groups = np.full(lat.shape, 3, dtype=np.int64)  # D unless a rule below applies
    groups[coldest > 0] = 2
    groups[coldest >= 18] = 0
    groups[annual < 10 * threshold] = 1
    groups[warmest < 10] = 4
    return groups
