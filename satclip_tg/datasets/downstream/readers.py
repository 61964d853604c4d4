"""Readers of the packaged global data, public for plugins' downstream data sets.

All functions take and return NumPy arrays; coordinates are ``(N, 2)`` arrays
of (lon, lat) in degrees. Readers import their file-format package (h5py,
rasterio, pyogrio, shapely) only when called. Area-uniform sampling and the
Earth radius live in `satclip_tg.geodesy` (``sample_sphere`` and
``EARTH_RADIUS_KM`` are re-exported here); `sample_land` samples it against
NOAA GLOBE's land mask (`is_land`).
"""

import functools
import json
import math
import pathlib
import zipfile
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...geodesy import EARTH_RADIUS_KM, sample_on_land, sample_sphere
from ...optional import require_module
from .sources import SOURCES, DataUnavailableError, locate_with_siblings

__all__ = [
    'EARTH_RADIUS_KM',
    'IGBP_CLASSES',
    'altitude',
    'continent_of',
    'country_index',
    'era5_annual',
    'era5_monthly',
    'is_land',
    'land_cover',
    'natural_earth_countries',
    'population_within',
    'sample_land',
    'sample_sphere',
]

#: MCD12C1 ``Majority_Land_Cover_Type_1`` classes (IGBP), by value 0-16.
IGBP_CLASSES = (
    'Water',
    'Evergreen needleleaf forest',
    'Evergreen broadleaf forest',
    'Deciduous needleleaf forest',
    'Deciduous broadleaf forest',
    'Mixed forest',
    'Closed shrubland',
    'Open shrubland',
    'Woody savanna',
    'Savanna',
    'Grassland',
    'Permanent wetland',
    'Cropland',
    'Urban and built-up',
    'Cropland/natural vegetation mosaic',
    'Snow and ice',
    'Barren or sparsely vegetated',
)

Coords = NDArray[np.float64]


def _require_module(name: str, requirement: str) -> Any:
    return require_module(
        name,
        f'{name} is needed to read this data: pip install '
        f"'satclip-tg[benchmark]' (or {requirement})",
        DataUnavailableError,
    )


def _grid_index(
    values: NDArray[np.float64], start: float, step: float, size: int
) -> NDArray[np.intp]:
    index = np.floor((values - start) / step).astype(np.intp)
    return np.clip(index, 0, size - 1)


def is_land(coords: Coords, cache_dir: pathlib.Path | None = None) -> NDArray[np.bool_]:
    """Whether points are on land, by NOAA GLOBE's 30 arc-second mask.

    The 933 MB mask is streamed from its compressed file row band by row band,
    so memory stays small; one call takes about two seconds whatever ``N``.
    Most lakes count as land, as in `global_land_mask`.

    Args:
        coords: ``(N, 2)`` (lon, lat) in degrees.
        cache_dir: The benchmark cache folder (for a downloaded wheel).

    Returns:
        ``(N,)`` booleans.
    """
    path = SOURCES['landmask'].require(cache_dir)
    coords = np.asarray(coords, dtype=np.float64)
    with zipfile.ZipFile(path) as archive, archive.open('mask.npy') as stream:
        version = np.lib.format.read_magic(stream)
        if version != (1, 0):  # pragma: no cover - the packaged file is 1.0
            raise ValueError(f'unexpected npy version {version} in {path}')
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        if fortran or dtype != np.bool_:  # pragma: no cover
            raise ValueError(f'unexpected mask layout in {path}')
        rows, cols = shape
        # Row 0 is 90 N, column 0 is 180 W; the mask is True over the ocean.
        row = _grid_index(90.0 - coords[:, 1], 0.0, 180.0 / rows, rows)
        col = _grid_index(coords[:, 0], -180.0, 360.0 / cols, cols)
        order = np.argsort(row, kind='stable')
        land = np.zeros(len(coords), dtype=bool)
        band = 512
        position = 0
        for first in range(0, rows, band):
            count = min(band, rows - first)
            block = np.frombuffer(stream.read(count * cols), dtype=bool).reshape(
                count, cols
            )
            end = int(np.searchsorted(row[order], first + count, side='left'))
            chosen = order[position:end]
            land[chosen] = ~block[row[chosen] - first, col[chosen]]
            position = end
            if position == len(order):
                break
    return land


def sample_land(n: int, seed: int, cache_dir: pathlib.Path | None = None) -> Coords:
    """Area-uniform points on land (see `_sample_land`; results are memoised).

    Args:
        n: Number of points.
        seed: Seed.
        cache_dir: The benchmark cache folder.

    Returns:
        ``(n, 2)`` float64 (lon, lat) in degrees.
    """
    path = SOURCES['landmask'].require(cache_dir)
    return _sample_land(n, seed, str(path), cache_dir).copy()


@functools.lru_cache(maxsize=16)
def _sample_land(
    n: int, seed: int, mask_path: str, cache_dir: pathlib.Path | None
) -> Coords:
    """Area-uniform points on land (`sample_on_land` against `is_land`).

    Args:
        n: Number of points.
        seed: Seed.
        mask_path: The mask file (part of the memo key).
        cache_dir: The benchmark cache folder.

    Returns:
        ``(n, 2)`` float64 (lon, lat) in degrees.
    """
    return sample_on_land(n, seed, lambda coords: is_land(coords, cache_dir))


@functools.cache
def _era5_monthly(path: str) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    h5py = _require_module('h5py', 'h5py')
    with h5py.File(path, 'r') as handle:
        temperature = np.asarray(handle['t2m'][:], dtype=np.float32)
        precipitation = np.asarray(handle['tp'][:], dtype=np.float32)
        latitude = np.asarray(handle['latitude'][:])
        longitude = np.asarray(handle['longitude'][:])
    if not (latitude[0] == 90.0 and longitude[0] == 0.0):  # pragma: no cover
        raise ValueError(f'unexpected ERA5 grid in {path}')
    # Units as stored (verified against known climates): deg C and
    # mm/month, although the attributes say K and m.
    return temperature, precipitation


@functools.cache
def _era5_grids(path: str) -> dict[str, NDArray[np.float32]]:
    temperature, precipitation = _era5_monthly(path)
    return {
        'temperature': temperature.mean(axis=0, dtype=np.float64).astype(np.float32),
        'precipitation': precipitation.sum(axis=0, dtype=np.float64).astype(np.float32),
    }


def _era5_cells(
    coords: Coords, shape: tuple[int, ...]
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    rows, cols = shape[-2:]
    row = np.clip(np.rint((90.0 - coords[:, 1]) / 0.25).astype(np.intp), 0, rows - 1)
    col = np.rint(np.mod(coords[:, 0], 360.0) / 0.25).astype(np.intp) % cols
    return row, col


def era5_annual(
    coords: Coords, variable: str, cache_dir: pathlib.Path | None = None
) -> NDArray[np.float64]:
    """Annual ERA5 climatology (2000-2025) at the nearest 0.25 deg grid cell.

    Args:
        coords: ``(N, 2)`` (lon, lat) in degrees.
        variable: ``'temperature'`` (mean of the 12 monthly means, deg C) or
            ``'precipitation'`` (sum of the 12 monthly totals, mm per year).
        cache_dir: The benchmark cache folder.

    Returns:
        ``(N,)`` values.
    """
    grid = _era5_grids(str(SOURCES['era5'].require(cache_dir)))[variable]
    row, col = _era5_cells(coords, grid.shape)
    values: NDArray[np.float64] = grid[row, col].astype(np.float64)
    return values


def era5_monthly(
    coords: Coords, cache_dir: pathlib.Path | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Monthly ERA5 climatology (2000-2025) at the nearest 0.25 deg grid cell.

    Args:
        coords: ``(N, 2)`` (lon, lat) in degrees.
        cache_dir: The benchmark cache folder.

    Returns:
        ``(temperature, precipitation)``, each ``(12, N)``, January first:
        monthly means in deg C and monthly totals in mm.
    """
    temperature, precipitation = _era5_monthly(str(SOURCES['era5'].require(cache_dir)))
    row, col = _era5_cells(coords, temperature.shape)
    return (
        temperature[:, row, col].astype(np.float64),
        precipitation[:, row, col].astype(np.float64),
    )


def altitude(
    coords: Coords, cache_dir: pathlib.Path | None = None
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Elevation from pvlib's 1/12 deg grid.

    Args:
        coords: ``(N, 2)`` (lon, lat) in degrees.
        cache_dir: The benchmark cache folder.

    Returns:
        ``(metres, valid)``: elevation and whether the cell has one (False over
        the ocean of this coarse grid).
    """
    h5py = _require_module('h5py', 'h5py')
    with h5py.File(SOURCES['altitude'].require(cache_dir), 'r') as handle:
        values = np.asarray(handle['Altitude'][:])
    rows, cols = values.shape
    row = _grid_index(90.0 - coords[:, 1], 0.0, 180.0 / rows, rows)
    col = _grid_index(coords[:, 0], -180.0, 360.0 / cols, cols)
    raw = values[row, col]
    return raw.astype(np.float64) * 28.0 - 450.0, raw != 255


def land_cover(
    coords: Coords, cache_dir: pathlib.Path | None = None
) -> NDArray[np.int64]:
    """MODIS MCD12C1 2019 IGBP land-cover class (0 water, 1-16) of each point.

    Args:
        coords: ``(N, 2)`` (lon, lat) in degrees.
        cache_dir: The benchmark cache folder.

    Returns:
        ``(N,)`` class values, indices into `IGBP_CLASSES`.
    """
    import rasterio
    import rasterio.transform

    with rasterio.open(SOURCES['landcover'].require(cache_dir)) as dataset:
        values = dataset.read(1)
        transform = dataset.transform
    rows, cols = rasterio.transform.rowcol(transform, coords[:, 0], coords[:, 1])
    row = np.clip(np.asarray(rows), 0, values.shape[0] - 1)
    col = np.clip(np.asarray(cols), 0, values.shape[1] - 1)
    classes: NDArray[np.int64] = values[row, col].astype(np.int64)
    # Anything outside 0-16 (fill values) counts as water.
    classes[(classes < 0) | (classes >= len(IGBP_CLASSES))] = 0
    return classes


@functools.cache
def _countries(path: str) -> tuple[list[str], list[str], Any]:
    import pyogrio.raw
    import shapely

    meta, _, geometry, fields = pyogrio.raw.read(path)
    columns = list(meta['fields'])
    names = [str(value) for value in fields[columns.index('name')]]
    continents = [str(value) for value in fields[columns.index('continent')]]
    return names, continents, shapely.from_wkb(geometry)


def natural_earth_countries(
    cache_dir: pathlib.Path | None = None,
) -> tuple[list[str], list[str], Any]:
    """The Natural Earth 1:110m countries.

    Args:
        cache_dir: The benchmark cache folder.

    Returns:
        ``(names, continents, geometries)`` in file order; geometries is a
        NumPy array of shapely polygons.

    Raises:
        DataUnavailableError: If the shapefile cannot be found.
    """
    path = locate_with_siblings(SOURCES['naturalearth'], cache_dir)
    if path is None:
        raise DataUnavailableError(SOURCES['naturalearth'].install_hint())
    return _countries(str(path))


def country_index(
    coords: Coords, cache_dir: pathlib.Path | None = None, nearest: bool = False
) -> NDArray[np.int64]:
    """Index of the Natural Earth country containing each point.

    Args:
        coords: ``(N, 2)`` (lon, lat) in degrees.
        cache_dir: The benchmark cache folder.
        nearest: Give points outside every polygon the nearest country (in
            plate carree degrees) instead of -1.

    Returns:
        ``(N,)`` indices into the lists of `natural_earth_countries`, -1 for
        points in no country (unless ``nearest``).
    """
    import shapely

    _, _, geometries = natural_earth_countries(cache_dir)
    tree = shapely.STRtree(geometries)
    points = shapely.points(coords)
    found = np.full(len(coords), -1, dtype=np.int64)
    point_index, country = tree.query(points, predicate='within')
    found[point_index] = country
    if nearest:
        missing = np.flatnonzero(found < 0)
        if len(missing):
            point_index, country = tree.query_nearest(
                points[missing], all_matches=False
            )
            found[missing[point_index]] = country
    return found


def continent_of(
    coords: Coords, cache_dir: pathlib.Path | None = None
) -> NDArray[np.str_]:
    """The Natural Earth continent of each point, or of the nearest country.

    Used as the group of leave-one-continent-out cross-validation, so that
    ocean points belong to the continent of the nearest land.

    Args:
        coords: ``(N, 2)`` (lon, lat) in degrees.
        cache_dir: The benchmark cache folder.

    Returns:
        ``(N,)`` continent names.
    """
    _, continents, _ = natural_earth_countries(cache_dir)
    index = country_index(coords, cache_dir, nearest=True)
    return np.asarray(continents, dtype=str)[index]


@functools.cache
def _cities(path: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    with open(path, encoding='utf-8') as handle:
        records = json.load(handle)
    values = records.values() if isinstance(records, dict) else records
    table = np.array(
        [
            (float(r['longitude']), float(r['latitude']), float(r['population']))
            for r in values
        ],
        dtype=np.float64,
    )
    return _unit_vectors(table[:, :2]), table[:, 2]


def _unit_vectors(coords: Coords) -> NDArray[np.float64]:
    lon, lat = np.radians(coords[:, 0]), np.radians(coords[:, 1])
    return np.stack(
        [np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1
    )


def population_within(
    coords: Coords, radius_km: float = 50.0, cache_dir: pathlib.Path | None = None
) -> NDArray[np.float64]:
    """Summed population of the GeoNames places within a great-circle radius.

    Exact: every point is compared with all 234,908 places (cosine of the
    angle between unit vectors), in chunks.

    Args:
        coords: ``(N, 2)`` (lon, lat) in degrees.
        radius_km: The radius.
        cache_dir: The benchmark cache folder.

    Returns:
        ``(N,)`` people.
    """
    vectors, population = _cities(str(SOURCES['cities'].require(cache_dir)))
    threshold = math.cos(radius_km / EARTH_RADIUS_KM)
    queries = _unit_vectors(np.asarray(coords, dtype=np.float64))
    total = np.zeros(len(queries))
    chunk = 256
    for first in range(0, len(queries), chunk):
        cosine = queries[first : first + chunk] @ vectors.T
        total[first : first + chunk] = (cosine >= threshold) @ population
    return total
