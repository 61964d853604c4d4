"""S2-100K and user imagery in the same layout, for SatCLIP pretraining.

The on-disk layout is that of S2-100K::

    root/
      index.csv           columns fn, lon, lat (the patch centre, degrees)
      images/<fn>         one GeoTIFF per row

`SatCLIPImageryDataset` extends `torchgeo.datasets.S2100k` so
that any imagery in this layout works (any file names, any band count, any
constant patch size), bad rows of ``index.csv`` are reported precisely, and a
corrupt tile either raises an error naming the file or, on request, is skipped.
"""

import pathlib
import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import pandas as pd
import rasterio
import torch
from torch import Tensor
from torchgeo.datasets import DatasetNotFoundError, S2100k
from torchgeo.datasets.utils import Path, Sample

from ..location.coordinates import validate_coordinates

__all__ = [
    'SatCLIPDatasetNotFoundError',
    'SatCLIPImageryDataset',
    'UnreadableTileError',
    'UnreadableTileWarning',
]

#: Columns that ``index.csv`` must have.
INDEX_COLUMNS = ('fn', 'lon', 'lat')


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


class UnreadableTileError(RuntimeError):
    """Raised when an image tile cannot be read or has an unexpected shape.

    The message names the file and the underlying error, so that a bad tile
    among 100,000 can be found and replaced. Pass ``skip_unreadable=True`` to
    `SatCLIPImageryDataset` to skip such tiles instead.
    """


class UnreadableTileWarning(UserWarning):
    """Warning issued (once per file) when an unreadable tile is skipped."""


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
    * ``index.csv`` is validated: required columns, and finite longitudes in
      [-180, 180] and latitudes in [-90, 90];
    * any band count and any patch size (constant over the data set) work;
      `bands` and `patch_size` are read lazily from the metadata
      of the first readable tile;
    * samples hold ``image`` (C, H, W) with the raw pixel values in the
      tiles' own dtype (TorchGeo's reader converts to float32; uint16 keeps
      S2-100K at half the memory, and the data module converts on the
      accelerator) and ``point`` (2,) float32 (lon, lat) in degrees;
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
                file, has no rows or lacks one of the columns fn, lon, lat, or
                if a file name or coordinate is missing, or a coordinate is
                non-numeric, non-finite or out of range.
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
        self.files = [str(self.root / 'images' / fn) for fn in self.index['fn']]
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

    def _first_listed_file(self) -> pathlib.Path | None:
        """Return the path of the first image listed in ``index.csv``.

        Returns:
            ``root/images/<fn>`` of the first row, or None when the index is
            empty or has no ``fn`` column (validated later, with a message).

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
        return self.root / 'images' / str(head['fn'].iloc[0]).strip()

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
        pixels are decoded).

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
        image = bands * height * width * self.dtype.itemsize
        return image + self.points[0].element_size() * 2

    @property
    def bands(self) -> int:
        """Number of bands of the images (12 for S2-100K)."""
        return self.image_shape[0]

    @property
    def patch_size(self) -> tuple[int, int]:
        """Height and width of the images in pixels (256 x 256 for S2-100K)."""
        return self.image_shape[1], self.image_shape[2]

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
