"""S2-100K and user imagery in the same layout, for SatCLIP pretraining.

The on-disk layout is that of S2-100K::

    root/
      index.csv           columns fn, lon, lat (the patch centre, degrees)
      images/<fn>         one GeoTIFF per row

`SatCLIPImageryDataset` extends `torchgeo.datasets.S2100k` so
that any imagery in this layout works (any file names, any band count, any
constant patch size), bad rows of ``index.csv`` are reported precisely, and a
corrupt tile either raises an error naming the file or, on request, is skipped.
`SatCLIPImageryDataset.check_tiles` reads the header of every tile (no
pixels) and reports every missing, unreadable or odd tile at once.
"""

import math
import os
import pathlib
import time
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import rasterio
import torch
from matplotlib.figure import Figure
from rasterio.errors import NotGeoreferencedWarning
from torch import Tensor
from torchgeo.datasets import DatasetNotFoundError, S2100k
from torchgeo.datasets.utils import Path, Sample

from ..errors import UnreadableTileError
from ..location.coordinates import validate_coordinates

__all__ = [
    'TILE_PROBLEMS',
    'SatCLIPDatasetNotFoundError',
    'SatCLIPImageryDataset',
    'TileCheckError',
    'TileCheckReport',
    'TileProblem',
    'UnreadableTileError',
    'UnreadableTileWarning',
]

#: Columns that ``index.csv`` must have.
INDEX_COLUMNS = ('fn', 'lon', 'lat')

#: Rows named per problem in messages about bad rows (the count is always
#: given in full).
SHOWN_ROWS = 5

#: What `SatCLIPImageryDataset.check_tiles` reports, in report order.
TILE_PROBLEMS: Mapping[str, str] = {
    'missing': 'missing file',
    'unreadable': 'unreadable header',
    'bands': 'other band count',
    'size': 'other size',
    'dtype': 'other data type',
}

# File names in ``index.csv`` that would leave ``images/``. Backslashes count
# as separators too, so that an index is refused on every platform, not only
# on the one where it escapes.
_FILE_NAME_PROBLEMS = (
    ('an absolute path or drive', r'^(?:[/\\]|[A-Za-z]:)'),
    ("a '..' component", r'(?:^|[/\\])\.\.(?:[/\\]|\Z)'),
    ('images/ itself', r'^(?:\.?[/\\]+)*\.?\Z'),
)

# Tiles per task of the header check's thread pool: large enough that the
# per-task overhead (a rasterio.Env) is small next to ~0.5 ms per header.
_HEADER_CHUNK = 256

# How header reads open a tile. By default GDAL lists the tile's folder for
# sidecar files on each open (S2-100K has 100,000 tiles in one) and reads the
# georeferencing, which rasterio turns into a CRS (a PROJ database lookup);
# the check needs neither, and they are over 80% of the cost of an open (1.3 ->
# 0.2 ms per tile in a folder of 100,000 tiles, measured by
# benchmarks/pretraining_throughput.py --tile-check 100000). The configuration
# is per thread (rasterio.Env), so loading is unaffected.
_HEADER_ENV = {'GDAL_DISABLE_READDIR_ON_OPEN': 'EMPTY_DIR'}
_HEADER_OPEN_OPTIONS = {'GEOREF_SOURCES': 'NONE'}


def _describe(error: BaseException) -> str:
    """Describe an error and the errors chained to it, outermost first.

    GDAL errors often arrive as "Read failed. See previous exception for
    details.", with the useful message only in the chain.

    Args:
        error: The error to describe.

    Returns:
        ``'Type: message <- Type: message ...'`` for the chain (at most 5).
    """
    parts: list[str] = []
    current: BaseException | None = error
    while current is not None and len(parts) < 5:
        parts.append(f'{type(current).__name__}: {current}')
        current = current.__cause__ or current.__context__
    return ' <- '.join(parts)


def _some_rows(rows: Sequence[str], shown: int = SHOWN_ROWS) -> str:
    """Join the first few row descriptions, saying how many are left out.

    Args:
        rows: One description per bad row, e.g. ``"row 4 '../a.tif'"``.
        shown: How many to show.

    Returns:
        ``'row 4 ..., row 9 ... and 12 more'``.
    """
    text = ', '.join(rows[:shown])
    if len(rows) > shown:
        text += f' and {len(rows) - shown} more'
    return text


def _file_name_problems(names: 'pd.Series[str]') -> list[str]:
    """Say, for each file name, why it does not name a file inside images/.

    Checks the text only: symbolic links inside ``images/`` are followed on
    purpose (a folder of links into a shared store is a common layout).

    Args:
        names: Stripped file names from column fn of ``index.csv``.

    Returns:
        One entry per name: ``''`` if it is fine, else the reason.
    """
    reasons = np.where(names == '', 'an empty name', '').astype(object)
    for reason, pattern in _FILE_NAME_PROBLEMS:
        hit = names.str.contains(pattern, regex=True).to_numpy(dtype=bool)
        reasons[hit & (reasons == '')] = reason
    return [str(r) for r in reasons]


def _default_rgb_bands(bands: int) -> tuple[int, ...]:
    """The bands `SatCLIPImageryDataset.plot` shows by default.

    Args:
        bands: Band count of the image.

    Returns:
        B04, B03, B02 for Sentinel-2 (12 bands of S2-100K, or 13 with B10
        inserted: B01 to B04 lead both orders), the first three bands of
        other images with 3 or more, else the first band (grey).
    """
    if bands in (12, 13):
        return (3, 2, 1)
    if bands >= 3:
        return (0, 1, 2)
    return (0,)


class _Header(NamedTuple):
    """What `SatCLIPImageryDataset.check_tiles` reads of a tile."""

    bands: int
    height: int
    width: int
    dtype: str


def _read_headers(paths: Sequence[str]) -> list[_Header | tuple[str, str]]:
    """Read the header of each tile: band count, size and dtype; no pixels.

    Args:
        paths: Paths of the tiles.

    Returns:
        For each path its `_Header`, or ``(problem, detail)`` with problem
        ``'missing'`` or ``'unreadable'`` (keys of `TILE_PROBLEMS`).
    """
    headers: list[_Header | tuple[str, str]] = []
    with rasterio.Env(**_HEADER_ENV):
        for path in paths:
            try:
                with rasterio.open(path, **_HEADER_OPEN_OPTIONS) as src:
                    if not src.count:  # e.g. a container of subdatasets
                        headers.append(('unreadable', 'no raster bands'))
                        continue
                    headers.append(
                        _Header(
                            int(src.count),
                            int(src.height),
                            int(src.width),
                            str(src.dtypes[0]),
                        )
                    )
            # GDAL reports bad files with several exception types (and
            # drivers with their own); every one of them means "unreadable".
            except Exception as error:
                problem = 'unreadable' if os.path.isfile(path) else 'missing'
                headers.append((problem, _describe(error)))
    return headers


@dataclass(frozen=True)
class TileProblem:
    """One bad row found by `SatCLIPImageryDataset.check_tiles`.

    Attributes:
        row: Row of ``index.csv``, counted from 0 (header excluded).
        fn: Its file name.
        detail: What was found: the error, or the odd value.
    """

    row: int
    fn: str
    detail: str

    def describe(self) -> str:
        """Return ``"row 3 'a.tif' (detail)"``."""
        return f'row {self.row} {self.fn!r} ({self.detail})'


@dataclass(frozen=True)
class TileCheckReport:
    """What `SatCLIPImageryDataset.check_tiles` found.

    Attributes:
        root: The data set's ``images/`` folder.
        tiles: Number of tiles checked (rows of ``index.csv``).
        image_shape: (bands, height, width) of the data set: that of the most
            common header (ties: the earliest row); None if no tile is
            readable.
        dtype: Pixel dtype of the data set, likewise (e.g. ``'uint16'``).
        problems: For each key of `TILE_PROBLEMS`, the bad rows in row
            order. A tile with several odd values (e.g. size and dtype) is
            listed under each.
        seconds: Time the check took.
    """

    root: str
    tiles: int
    image_shape: tuple[int, int, int] | None
    dtype: str | None
    problems: Mapping[str, tuple[TileProblem, ...]]
    seconds: float

    @property
    def bad_rows(self) -> list[int]:
        """Rows of ``index.csv`` with at least one problem, sorted."""
        return sorted({p.row for found in self.problems.values() for p in found})

    @property
    def ok(self) -> bool:
        """Whether every tile is present and has the data set's header."""
        return not any(self.problems.values())

    def counts(self) -> dict[str, int]:
        """Number of bad rows per problem (keys of `TILE_PROBLEMS`)."""
        return {key: len(self.problems.get(key, ())) for key in TILE_PROBLEMS}

    def summary(self, shown: int = SHOWN_ROWS) -> str:
        """Describe the result: counts per problem and the first bad rows of each.

        Args:
            shown: Rows shown per problem.

        Returns:
            One line when every tile is fine, else one line per problem.
        """
        head = (
            f'checked the headers of {self.tiles} tile(s) in {self.root} in '
            f'{self.seconds:.2f} s'
        )
        if self.ok:
            return f'{head}: all fine'
        counts = self.counts()
        found = ', '.join(
            f'{counts[key]} x {label}'
            for key, label in TILE_PROBLEMS.items()
            if counts[key]
        )
        lines = [f'{head}: {len(self.bad_rows)} bad row(s) ({found})']
        if self.image_shape is not None:
            bands, height, width = self.image_shape
            lines[0] += (
                f'; the data set has {bands} band(s) of {height}x{width} '
                f'{self.dtype} pixels (the most common header)'
            )
        for key, label in TILE_PROBLEMS.items():
            if counts[key]:
                rows = [p.describe() for p in self.problems[key]]
                lines.append(f'  {label} ({counts[key]}): {_some_rows(rows, shown)}')
        lines.append('  (rows of index.csv counted from 0)')
        return '\n'.join(lines)


class UnreadableTileWarning(UserWarning):
    """Warning issued (once per file) when an unreadable tile is skipped."""


class TileCheckError(UnreadableTileError):
    """Raised when `SatCLIPImageryDataset.check_tiles` finds bad tiles.

    It is an `UnreadableTileError`, so existing ``except`` clauses keep
    working.

    Attributes:
        report: The full result, with every bad row.
    """

    def __init__(self, message: str, report: TileCheckReport) -> None:
        """Initialize a new TileCheckError instance.

        Args:
            message: What went wrong and what to do.
            report: The result of the check.
        """
        super().__init__(message)
        self.report = report


class SatCLIPDatasetNotFoundError(DatasetNotFoundError):
    """`DatasetNotFoundError` with a precise message.

    On top of TorchGeo's message it says which file is missing, how to switch
    downloading on from a LightningCLI config file, and what layout is
    expected for one's own imagery. It *is* a ``DatasetNotFoundError`` (and so
    a ``FileNotFoundError``), so existing ``except`` clauses keep working.
    """

    def __init__(self, dataset: 'SatCLIPImageryDataset', missing: str) -> None:
        """Initialize a new SatCLIPDatasetNotFoundError instance.

        Args:
            dataset: The dataset that was requested.
            missing: Description of what is missing, e.g. the path of a file.
        """
        super().__init__(dataset)
        base = str(self)
        msg = f'{base} Missing: {missing}.'
        if not dataset.download:
            msg += (
                ' To download S2-100K (about 78 GB) set `download=True`; in a '
                'LightningCLI config file set `data.init_args.download: true` '
                '(or pass `--data.init_args.download true` on the command line).'
            )
        msg += (
            ' For your own imagery use the same layout: `<root>/index.csv` with '
            'columns fn, lon, lat and one GeoTIFF per row in `<root>/images/<fn>`.'
        )
        self.args = (msg,)


class SatCLIPImageryDataset(S2100k):
    """S2-100K, or one's own imagery in the S2-100K layout.

    Differences from `torchgeo.datasets.S2100k`:

    * the data counts as present when ``index.csv`` exists and the first file
      it lists exists in ``images/`` (TorchGeo looks for ``patch_0.tif``), so
      any file names work; otherwise TorchGeo's download logic is used;
    * ``index.csv`` is validated: required columns, finite longitudes in
      [-180, 180] and latitudes in [-90, 90], and file names that are
      relative paths inside ``images/`` (not empty, not absolute, no ``..``
      component), each listed once;
    * any band count and any patch size (constant over the data set) work;
      `bands` and `patch_size` are read lazily from the metadata
      of the first readable tile;
    * `check_tiles` reads the header of every tile (no pixels) and reports
      every missing, unreadable or odd tile at once;
    * samples hold ``image`` (C, H, W) with the raw pixel values in the
      tiles' own dtype (TorchGeo's reader converts to float32; uint16 keeps
      S2-100K at half the memory, and the data module converts on the
      accelerator) and ``point`` (2,) float32 (lon, lat) in degrees;
    * `plot` draws any band count (``rgb_bands`` picks the bands);
    * a corrupt tile raises `UnreadableTileError` naming the file, or
      with ``skip_unreadable=True`` gives ``None`` for that sample (with an
      `UnreadableTileWarning` once per file and process); use a collate
      function that drops ``None``, such as the one of
      `S2100KDataModule`.
    """

    def __init__(
        self,
        root: Path = 'data',
        *,
        mode: Literal['both', 'points'] = 'both',
        transforms: Callable[[Sample], Sample] | None = None,
        download: bool = False,
        checksum: bool = False,
        skip_unreadable: bool = False,
    ) -> None:
        """Initialize a new SatCLIPImageryDataset instance.

        Args:
            root: Directory holding ``index.csv`` and ``images/``.
            mode: ``'both'`` returns images and points, ``'points'`` only the
                points (no image is read).
            transforms: A function that takes a sample and returns a
                transformed version (not called for skipped tiles). It gets
                the image as float32, as from `torchgeo.datasets.S2100k`.
            download: If True, download S2-100K into ``root`` when it is not
                there (about 78 GB).
            checksum: If True, check the SHA-256 of downloaded files (slow).
            skip_unreadable: If True, return ``None`` for tiles that cannot be
                read instead of raising `UnreadableTileError`.

        Raises:
            ValueError: If ``mode`` is invalid, if ``index.csv`` is not a CSV
                file, has no rows or lacks one of the columns fn, lon, lat, if
                a file name is missing, empty, absolute, has a ``..``
                component or repeats an earlier row's, or if a coordinate is
                missing, non-numeric, non-finite or out of range.
            DatasetNotFoundError: If the data is not found and ``download`` is
                False (a `SatCLIPDatasetNotFoundError`).
        """
        if mode not in ('both', 'points'):
            raise ValueError(f"mode must be 'both' or 'points', got {mode!r}")
        self.skip_unreadable = skip_unreadable
        self._image_shape: tuple[int, int, int] | None = None
        self._dtype: np.dtype[Any] | None = None
        self._warned: set[str] = set()
        super().__init__(
            root, mode=mode, transforms=transforms, download=download, checksum=checksum
        )
        index_path = self.root / 'index.csv'
        self.index = self._validate_index(self.index, index_path)
        names = self._validate_file_names(self.index['fn'], index_path)
        # os.path.join, not pathlib: 20x faster at 100,000 rows.
        images = str(self.root / 'images')
        self.files = [os.path.join(images, name) for name in names]
        self.points = torch.as_tensor(
            self.index[['lon', 'lat']].to_numpy(dtype=np.float64),
            dtype=torch.float32,
        )

    @staticmethod
    def _validate_index(index: pd.DataFrame, path: pathlib.Path) -> pd.DataFrame:
        """Check the columns and coordinates of ``index.csv``.

        Args:
            index: The table read from ``path``.
            path: Path of ``index.csv``, for the error messages.

        Returns:
            The table, with ``fn`` as strings and ``lon``/``lat`` as floats.

        Raises:
            ValueError: If a column is missing, if there are no rows, or if a
                file name is missing or a coordinate is missing, non-numeric,
                non-finite or out of range.
        """
        index.columns = [str(c).strip() for c in index.columns]
        missing = [c for c in INDEX_COLUMNS if c not in index.columns]
        if missing:
            raise ValueError(
                f'{path} lacks the column(s) {", ".join(missing)}: it must have the '
                f'columns fn, lon, lat (file name in images/, patch centre '
                f'longitude and latitude in degrees); found '
                f'{", ".join(map(str, index.columns)) or "no columns"}'
            )
        if index.empty:
            raise ValueError(f'{path} lists no images: it has no rows')
        if index['fn'].isna().any():
            first = int(np.flatnonzero(index['fn'].isna().to_numpy())[0])
            count = int(index['fn'].isna().sum())
            raise ValueError(
                f'{path}: {count} row(s) have no file name in column fn; '
                f'first is row {first}'
            )
        index = index.assign(
            fn=index['fn'].astype(str).str.strip(),
            lon=pd.to_numeric(index['lon'], errors='coerce'),
            lat=pd.to_numeric(index['lat'], errors='coerce'),
        )
        coords = torch.as_tensor(
            index[['lon', 'lat']].to_numpy(dtype=np.float64), dtype=torch.float64
        ).reshape(-1, 2)
        try:
            validate_coordinates(coords)
        except ValueError as error:
            raise ValueError(f'{path}: {error} (rows counted from 0)') from None
        return index

    @staticmethod
    def _validate_file_names(names: 'pd.Series[str]', path: pathlib.Path) -> list[str]:
        """Check that each file name is a relative path inside images/, once.

        A name such as ``../../x.tif`` or ``/etc/x.tif`` would read (and
        report) files outside the data root. A repeated name is refused too:
        the tile would count twice in an epoch, could be its own negative in
        a contrastive batch, and could land in both the training and the
        validation split.

        Args:
            names: Column fn, stripped.
            path: Path of ``index.csv``, for the error messages.

        Returns:
            The names, normalised (``a//./b.tif`` -> ``a/b.tif``).

        Raises:
            ValueError: Naming how many rows are bad and the first few
                (row and value).
        """
        reasons = _file_name_problems(names)
        bad = [
            f'row {row} {name!r} ({reason})'
            for row, (name, reason) in enumerate(zip(names, reasons, strict=True))
            if reason
        ]
        if bad:
            raise ValueError(
                f'{path}: {len(bad)} of {len(names)} row(s) have a file name in '
                f'column fn that is not a relative path inside '
                f'{path.parent / "images"}: {_some_rows(bad)} (rows counted from '
                f'0); file names must be relative to images/ and stay inside it'
            )
        normalised = [os.path.normpath(name) for name in names]
        first_row: dict[str, int] = {}
        repeated: list[str] = []
        for row, (name, key) in enumerate(zip(names, normalised, strict=True)):
            first = first_row.setdefault(key, row)
            if first != row:
                repeated.append(f'row {row} {name!r} (as row {first})')
        if repeated:
            raise ValueError(
                f'{path}: {len(repeated)} row(s) repeat the file name of an '
                f'earlier row: {_some_rows(repeated)} (rows counted from 0); list '
                f'each tile once (a repeated tile counts twice per epoch and can '
                f'be in both the training and the validation split)'
            )
        return normalised

    def _first_listed_file(self) -> pathlib.Path | None:
        """Return the path of the first image listed in ``index.csv``.

        Returns:
            ``root/images/<fn>`` of the first row, or None when the index is
            empty, has no ``fn`` column, or its first file name would leave
            ``images/`` (all validated later, with a message).

        Raises:
            ValueError: If ``index.csv`` cannot be parsed as CSV.
        """
        path = self.root / 'index.csv'
        try:
            head = pd.read_csv(path, nrows=1)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
            raise ValueError(
                f'{path} cannot be read as CSV with the columns fn, lon, lat: {error}'
            ) from error
        head.columns = [str(c).strip() for c in head.columns]
        if 'fn' not in head.columns or head.empty:
            return None
        first = str(head['fn'].iloc[0]).strip()
        # Do not even look at a path outside the data root.
        if _file_name_problems(pd.Series([first]))[0]:
            return None
        return self.root / 'images' / first

    def _verify(self) -> None:
        """Verify that the data is present, downloading it if allowed.

        Raises:
            DatasetNotFoundError: If the data is not found and ``download`` is
                False, or if the images listed in ``index.csv`` are still
                missing after TorchGeo's download/extraction logic ran.
            ValueError: If ``index.csv`` cannot be parsed as CSV.
        """
        index_path = self.root / 'index.csv'
        if index_path.is_file():
            first = self._first_listed_file()
            if first is None or first.is_file():
                return
        elif not self.download:
            raise SatCLIPDatasetNotFoundError(self, f'{index_path}')

        # Defer to TorchGeo: download index.csv and/or extract or download
        # satclip.tar into images/.
        try:
            super()._verify()
        except DatasetNotFoundError:
            raise SatCLIPDatasetNotFoundError(
                self,
                f'{self.root / "images"}/<fn> for the files listed in {index_path} '
                f'(and no {self.root / "satclip.tar"} to extract)',
            ) from None
        first = self._first_listed_file()
        if first is not None and not first.is_file():
            raise SatCLIPDatasetNotFoundError(
                self, f'{first} (the first file listed in {index_path})'
            )

    def _read_shape(self, path: str) -> tuple[tuple[int, int, int], np.dtype[Any]]:
        """Read (bands, height, width) and the pixel dtype of one tile.

        Args:
            path: Path of the tile.

        Returns:
            The shape of the image the tile holds, and its dtype.

        Raises:
            UnreadableTileError: If the file cannot be opened.
        """
        try:
            with rasterio.open(path) as src:
                shape = int(src.count), int(src.height), int(src.width)
                return shape, np.dtype(src.dtypes[0])
        except Exception as error:
            raise UnreadableTileError(
                f'cannot read image tile {path}: {_describe(error)}'
            ) from error

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape (bands, height, width) of every image in the data set.

        Read once from the metadata of the first readable tile (cheap: no
        pixels are decoded), or set by `check_tiles` to the most common one.

        Raises:
            UnreadableTileError: If the first tile cannot be read (or, with
                ``skip_unreadable``, if no tile can be read).
        """
        if self._image_shape is None:
            for path in self.files:
                try:
                    self._image_shape, self._dtype = self._read_shape(path)
                    break
                except UnreadableTileError as error:
                    if not self.skip_unreadable:
                        raise
                    self._warn(path, error)
            else:
                raise UnreadableTileError(f'no readable image tile in {self.root}')
        return self._image_shape

    @property
    def dtype(self) -> torch.dtype:
        """Pixel dtype of the images as read (torch.uint16 for S2-100K).

        Raises:
            UnreadableTileError: As `image_shape`.
        """
        self.image_shape  # noqa: B018 - reads the metadata once
        assert self._dtype is not None
        return torch.from_numpy(np.zeros(0, dtype=self._dtype)).dtype

    @property
    def sample_bytes(self) -> int:
        """Bytes of one sample in host memory: the image and the point.

        Raises:
            UnreadableTileError: As `image_shape`.
        """
        bands, height, width = self.image_shape
        # Per-sample transforms get (and usually return) float32 images.
        itemsize = self.dtype.itemsize
        if self.transforms is not None:
            itemsize = max(itemsize, 4)
        image = bands * height * width * itemsize
        return image + self.points[0].element_size() * 2

    def plot(
        self,
        sample: Sample,
        show_titles: bool = True,
        suptitle: str | None = None,
        rgb_bands: Sequence[int] | None = None,
    ) -> Figure:
        """Plot a sample: an RGB composite (or one band in grey) and its point.

        Works for any band count, raw tiles (any dtype) and model input
        alike (scaled, normalised, with B10 inserted): the shown bands are
        stretched together between their 2nd and 98th percentiles, so the
        colours keep their balance whatever the units.

        Args:
            sample: A sample from `__getitem__`, or one of
                `torchgeo.datasets.utils.unbind_samples` (batch)
                after the data module's augmentation.
            show_titles: Show the (lon, lat) of the sample above the image.
            suptitle: Title of the figure.
            rgb_bands: Indices of the bands shown as red, green and blue (three
                indices), or of one band shown in grey (one index). Default:
                B04, B03, B02 (``(3, 2, 1)``) for 12- or 13-band Sentinel-2
                images, ``(0, 1, 2)`` for other images with 3 or more bands,
                and the first band in grey for 1 or 2 bands.

        Returns:
            The figure.

        Raises:
            ValueError: If the sample has no image of shape (C, H, W), or
                ``rgb_bands`` does not hold 1 or 3 band indices in
                [0, C).
        """
        if 'image' not in sample:
            raise ValueError(
                "the sample has no 'image' to plot (a points-only sample of mode "
                "'points'?)"
            )
        image = sample['image'].detach().cpu()
        if image.ndim != 3:
            raise ValueError(
                f'plot takes one sample with an image of shape (C, H, W), got '
                f'shape {tuple(image.shape)}; split a batch with '
                f'torchgeo.datasets.utils.unbind_samples'
            )
        bands = image.shape[0]
        shown = list(_default_rgb_bands(bands) if rgb_bands is None else rgb_bands)
        if len(shown) not in (1, 3) or not all(
            isinstance(b, int) and not isinstance(b, bool) for b in shown
        ):
            raise ValueError(
                f'rgb_bands must hold 3 band indices (red, green, blue) or 1 (grey), '
                f'got {rgb_bands!r}'
            )
        outside = [b for b in shown if not 0 <= b < bands]
        if outside:
            raise ValueError(
                f'rgb_bands {list(shown)} name band(s) {outside}, but the image '
                f'has {bands} band(s) (indices 0 to {bands - 1})'
            )
        pixels = image[shown].float()
        # A subsample keeps the quantiles cheap (and within torch's size limit).
        low, high = torch.nanquantile(
            pixels.flatten()[:: max(pixels.numel() // 100_000, 1)],
            torch.tensor([0.02, 0.98]),
        ).tolist()
        if not (math.isfinite(low) and math.isfinite(high)):
            low, high = 0.0, 1.0  # nothing but NaN: draw it as it is
        pixels = ((pixels - low) / max(high - low, 1e-12)).clamp(0, 1)

        fig, ax = plt.subplots(figsize=(4, 4))
        if len(shown) == 3:
            ax.imshow(pixels.permute(1, 2, 0).numpy())
        else:
            ax.imshow(pixels[0].numpy(), cmap='gray', vmin=0, vmax=1)
        ax.axis('off')
        if show_titles and 'point' in sample:
            lon, lat = (float(v) for v in sample['point'])
            ax.set_title(f'({lon:0.4f}, {lat:0.4f})')
        if suptitle is not None:
            fig.suptitle(suptitle)
        return fig

    @property
    def bands(self) -> int:
        """Number of bands of the images (12 for S2-100K)."""
        return self.image_shape[0]

    @property
    def patch_size(self) -> tuple[int, int]:
        """Height and width of the images in pixels (256 x 256 for S2-100K)."""
        return self.image_shape[1], self.image_shape[2]

    def check_tiles(self, max_workers: int | None = None) -> TileCheckReport:
        """Check every tile's header: present, readable, same bands, size, dtype.

        Opens each file listed in ``index.csv`` and reads its header (band
        count, height, width, dtype; no pixels), so that bad tiles are found
        all at once before training rather than one by one while loading.
        The data set's shape and dtype are taken from the most common header
        (ties: the earliest row) and become `image_shape` and `dtype`, so
        that one odd first tile does not make every other tile look odd.

        Cost: about 0.2-0.3 ms per tile for local files in the page cache
        (measured: 18-22 s for 100,000 tiles in one folder with
        ``benchmarks/pretraining_throughput.py --tile-check 100000``, 0.27 ms
        for a real S2-100K tile), mostly holding the GIL, so threads add little there;
        on network file systems or a cold cache a header read waits on I/O
        and the ``max_workers`` threads overlap those waits. Pixels are not
        decoded, so a tile whose data (not header) is corrupt still raises
        `UnreadableTileError` (or is skipped) when it is loaded.

        Args:
            max_workers: Threads reading headers; default ``min(8, CPUs)``.

        Returns:
            The report: counts per problem and every bad row.

        Raises:
            ValueError: If ``max_workers`` is less than 1.
        """
        if max_workers is None:
            max_workers = min(8, os.cpu_count() or 1)
        if max_workers < 1:
            raise ValueError(f'max_workers must be at least 1, got {max_workers}')
        started = time.perf_counter()
        chunks = [
            self.files[i : i + _HEADER_CHUNK]
            for i in range(0, len(self.files), _HEADER_CHUNK)
        ]
        with warnings.catch_warnings():
            # Headers are read without georeferencing (see _HEADER_OPEN_OPTIONS),
            # so that rasterio would warn about every tile.
            warnings.simplefilter('ignore', NotGeoreferencedWarning)
            if max_workers == 1 or len(chunks) == 1:
                parts = [_read_headers(chunk) for chunk in chunks]
            else:
                with ThreadPoolExecutor(max_workers, 'tile-check') as pool:
                    parts = list(pool.map(_read_headers, chunks))
        headers = [header for part in parts for header in part]

        counts = Counter(h for h in headers if isinstance(h, _Header))
        reference = counts.most_common(1)[0][0] if counts else None
        problems: dict[str, list[TileProblem]] = {key: [] for key in TILE_PROBLEMS}
        names = self.index['fn'].tolist()
        for row, header in enumerate(headers):
            fn = str(names[row])
            if not isinstance(header, _Header):
                problems[header[0]].append(TileProblem(row, fn, header[1]))
                continue
            assert reference is not None  # a readable header exists
            if header.bands != reference.bands:
                detail = f'{header.bands} band(s), not {reference.bands}'
                problems['bands'].append(TileProblem(row, fn, detail))
            if (header.height, header.width) != (reference.height, reference.width):
                detail = (
                    f'{header.height}x{header.width}, not '
                    f'{reference.height}x{reference.width}'
                )
                problems['size'].append(TileProblem(row, fn, detail))
            if header.dtype != reference.dtype:
                detail = f'{header.dtype}, not {reference.dtype}'
                problems['dtype'].append(TileProblem(row, fn, detail))

        image_shape = None
        if reference is not None:
            image_shape = (reference.bands, reference.height, reference.width)
            self._image_shape = image_shape
            self._dtype = np.dtype(reference.dtype)
        return TileCheckReport(
            root=str(self.root / 'images'),
            tiles=len(headers),
            image_shape=image_shape,
            dtype=None if reference is None else reference.dtype,
            problems={key: tuple(found) for key, found in problems.items()},
            seconds=time.perf_counter() - started,
        )

    def _warn(self, path: str, error: Exception) -> None:
        """Warn, once per file and process, that a tile is skipped.

        Args:
            path: Path of the skipped tile.
            error: Why it was skipped.
        """
        if path not in self._warned:
            self._warned.add(path)
            warnings.warn(
                f'skipping unreadable image tile: {error}',
                UnreadableTileWarning,
                stacklevel=3,
            )

    def _read_image(self, path: str) -> Tensor:
        """Read one tile as a (C, H, W) tensor of raw values in its own dtype.

        Args:
            path: Path of the tile.

        Returns:
            The image.

        Raises:
            UnreadableTileError: If the file cannot be read or decoded, or if
                its shape or dtype differs from `image_shape` and `dtype`.
        """
        try:
            with rasterio.open(path) as src:
                array = src.read()
        except Exception as error:
            raise UnreadableTileError(
                f'cannot read image tile {path}: {_describe(error)}'
            ) from error
        expected = self.image_shape
        if array.shape != expected:
            raise UnreadableTileError(
                f'image tile {path} has shape (bands, height, width) = '
                f'{array.shape}, but the data set has {expected} (from its first '
                f'readable tile); all tiles must have the same bands and size'
            )
        if array.dtype != self._dtype:
            raise UnreadableTileError(
                f'image tile {path} holds {array.dtype} pixels, but the data set '
                f'holds {self._dtype} (from its first readable tile); all tiles '
                f'must have the same data type'
            )
        return torch.from_numpy(array)

    def __getitem__(self, index: int) -> Sample | None:  # type: ignore[override]
        """Return one sample.

        Args:
            index: Index of the sample (row of ``index.csv``).

        Returns:
            ``{'image': (C, H, W), 'point': float32 (2,)}`` with the raw
            pixel values in the tiles' dtype and (lon, lat) in degrees (no
            ``image`` in ``'points'`` mode), or ``None`` if the tile is unreadable and
            ``skip_unreadable`` is True.

        Raises:
            UnreadableTileError: If the tile is unreadable and
                ``skip_unreadable`` is False.
        """
        sample: Sample = {'point': self.points[index].clone()}
        if self.mode == 'both':
            path = self.files[index]
            try:
                sample['image'] = self._read_image(path)
            except UnreadableTileError as error:
                if not self.skip_unreadable:
                    raise
                self._warn(path, error)
                return None
        if self.transforms is not None:
            # Per-sample transforms expect float images, as TorchGeo's reader
            # gives (integer tensors such as uint16 support few operations).
            if 'image' in sample:
                sample['image'] = sample['image'].float()
            sample = self.transforms(sample)
        return sample
