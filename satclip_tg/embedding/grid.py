"""Embeddings on regular longitude/latitude grids, and GeoTIFF rasters of them.

On a regular grid every row of cells shares one latitude and every column one
longitude. When the encoding's linear maps factorise by latitude and
longitude (spherical harmonics: `LinearRowFactorization`) and the network
starts with an affine map it can continue after (the SIREN), the first
layer's pre-activations are computed once per row and once per column:
`RowFactorization` costs $2L - 1$ multiply-adds per cell and hidden unit
instead of $L^2$ (79 instead of 1600 at $L = 40$), and evaluates no
harmonics per cell. The result is exact: it equals the plain evaluation up to
floating-point rounding (tested). The parts are asked for these capabilities
(`satclip_tg.embedding.capabilities`), not checked for their class.
"""

import contextlib
import dataclasses
import math
import os
import pathlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..atomic import atomic_output
from ..location.encoder import encoder_device, encoder_dtype
from ..location.encodings.spherical_harmonics import LinearRowFactorization
from .capabilities import (
    SupportsLinearFactorization,
    SupportsLinearInput,
    has_row_factorization,
)
from .engine import embed_points, embedding_width
from .pca import PCAProjection, save_png

__all__ = [
    'GridEstimate',
    'GridResult',
    'GridSpec',
    'RowFactorization',
    'embed_grid',
    'estimate_grid_output',
    'iter_grid_windows',
    'plain_grid_embeddings',
    'supports_row_factorization',
    'write_grid_geotiff',
]

_COMPRESSIONS = ('deflate', 'zstd', 'lzw', 'none')


@dataclasses.dataclass(frozen=True)
class GridSpec:
    """A north-up regular grid in EPSG:4326, described by its cell edges.

    Cell ``(row, col)`` has its centre at lon ``min_lon + (col + 0.5) * res``
    and lat ``max_lat - (row + 0.5) * res``; row 0 is the northernmost.

    Attributes:
        min_lon: Western edge in degrees.
        min_lat: Southern edge in degrees.
        max_lon: Eastern edge in degrees.
        max_lat: Northern edge in degrees.
        resolution: Cell size in degrees.
        width: Number of columns.
        height: Number of rows.
    """

    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float
    resolution: float
    width: int
    height: int

    @classmethod
    def from_bbox(
        cls,
        bbox: tuple[float, float, float, float],
        resolution: float,
    ) -> 'GridSpec':
        """Build a grid from ``(min_lon, min_lat, max_lon, max_lat)``.

        Args:
            bbox: Bounding box in degrees.
            resolution: Cell size in degrees; the box's width and height must be
                whole multiples of it.

        Returns:
            The grid.

        Raises:
            ValueError: If the box is not inside [-180, 180] x [-90, 90], is
                empty, crosses the antimeridian, or is not a whole number of
                cells.
        """
        min_lon, min_lat, max_lon, max_lat = (float(v) for v in bbox)
        if not all(math.isfinite(v) for v in (*bbox, resolution)) or resolution <= 0:
            raise ValueError(
                f'the bounding box and resolution must be finite and the resolution '
                f'positive, got bbox {bbox} and resolution {resolution}'
            )
        if not (-180 <= min_lon < max_lon <= 180 and -90 <= min_lat < max_lat <= 90):
            hint = ''
            if min_lon > max_lon:
                hint = (
                    '; boxes crossing the antimeridian are not supported: '
                    'make two grids, one on each side'
                )
            raise ValueError(
                f'bbox must be MINLON MINLAT MAXLON MAXLAT with -180 <= MINLON < '
                f'MAXLON <= 180 and -90 <= MINLAT < MAXLAT <= 90, got {bbox}{hint}'
            )
        sizes = []
        for name, extent in (
            ('width', max_lon - min_lon),
            ('height', max_lat - min_lat),
        ):
            cells = extent / resolution
            count = round(cells)
            if count < 1 or abs(cells - count) > 1e-6 * max(1.0, cells):
                raise ValueError(
                    f'the bbox {name} ({extent:g} degrees) is not a whole number of '
                    f'{resolution:g}-degree cells ({cells:.4f}); adjust the bbox or '
                    f'use a resolution such as {extent / max(1, count):.10g}'
                )
            sizes.append(count)
        return cls(min_lon, min_lat, max_lon, max_lat, resolution, sizes[0], sizes[1])

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``."""
        return self.height, self.width

    def longitudes(self, start: int = 0, stop: int | None = None) -> Tensor:
        """Cell-centre longitudes of columns ``start:stop`` (float64).

        Args:
            start: First column.
            stop: End column (exclusive); default the last.

        Returns:
            ``(stop - start,)`` longitudes in degrees.
        """
        stop = self.width if stop is None else stop
        columns = torch.arange(start, stop, dtype=torch.float64)
        return (self.min_lon + (columns + 0.5) * self.resolution).clamp(-180, 180)

    def latitudes(self, start: int = 0, stop: int | None = None) -> Tensor:
        """Cell-centre latitudes of rows ``start:stop``, north first (float64).

        Args:
            start: First row.
            stop: End row (exclusive); default the last.

        Returns:
            ``(stop - start,)`` latitudes in degrees.
        """
        stop = self.height if stop is None else stop
        rows = torch.arange(start, stop, dtype=torch.float64)
        return (self.max_lat - (rows + 0.5) * self.resolution).clamp(-90, 90)

    def transform(self) -> Any:
        """The affine transform of the raster (rasterio ``Affine``).

        Returns:
            ``from_origin(min_lon, max_lat, res, res)``.
        """
        from rasterio.transform import from_origin

        return from_origin(self.min_lon, self.max_lat, self.resolution, self.resolution)


def supports_row_factorization(encoder: nn.Module) -> bool:
    """Whether `RowFactorization` applies to an encoder.

    Args:
        encoder: A location encoder.

    Returns:
        ``True`` when its encoding offers ``factorize_linear`` (spherical
        harmonics), its network ``input_linear`` and ``forward_from_linear``
        (SIREN), and it is in eval mode.
    """
    return has_row_factorization(encoder)


class RowFactorization:
    """Exact row-factorised evaluation of an encoder on grids.

    See the module documentation and `LinearRowFactorization` for the
    algebra. Typical use::

        factorization = RowFactorization(encoder)
        rows = factorization.row_coefficients(latitudes)    # (R, 2L-1, hidden)
        columns = factorization.column_terms(longitudes)    # (C, 2L-1)
        emb = factorization.embed(rows, columns)            # (R, C, embed_dim)
    """

    def __init__(self, encoder: nn.Module) -> None:
        """Prepare the factorisation of an encoder.

        Args:
            encoder: A location encoder whose parts offer the factorisation
                (spherical harmonics + SIREN), in eval mode.

        Raises:
            TypeError: If the encoder's parts do not offer it or it is training.
        """
        encoding = getattr(encoder, 'positional_encoding', None)
        network = getattr(encoder, 'network', None)
        if not (
            supports_row_factorization(encoder)
            and isinstance(encoding, SupportsLinearFactorization)
            and isinstance(network, SupportsLinearInput)
        ):
            raise TypeError(
                'row factorisation needs a sphericalharmonics + siren encoder in '
                'eval mode; use plain_grid_embeddings for other encoders'
            )
        self.encoding = encoding
        self.network = network
        self.dtype = encoder_dtype(encoder)
        self.device = encoder_device(encoder)
        weight, bias = network.input_linear()
        self._bias = bias.detach()
        self._factors = encoding.factorize_linear(weight.detach())
        self.legendre_polys = int(getattr(encoding, 'legendre_polys', 0))
        self._scratch: dict[str, Tensor] = {}

    @property
    def num_terms(self) -> int:
        """Number of longitude terms, $2L - 1$."""
        return self._factors.num_terms

    def latitude_factors(self, latitudes: Tensor, pad: bool = False) -> Tensor:
        r"""The latitude parts $A_l^m(\varphi)$ of all harmonics (float64).

        Args:
            latitudes: ``(R,)`` latitudes in degrees.
            pad: Append a zero column (used internally for padding).

        Returns:
            ``(R, L^2)`` float64 (``L^2 + 1`` with ``pad``), columns ordered as
            the encoding's.

        Raises:
            TypeError: If the encoding is not the spherical harmonics.
        """
        if not isinstance(self._factors, LinearRowFactorization):
            raise TypeError('latitude factors are defined for spherical harmonics')
        return self._factors.latitude_factors(latitudes, pad=pad)

    def row_coefficients(self, latitudes: Tensor) -> Tensor:
        """Contract the first layer with the latitude parts, once per row.

        Args:
            latitudes: ``(R,)`` latitudes in degrees.

        Returns:
            ``(R, 2L-1, hidden)`` coefficients $C_{k,m}$ in the network's dtype
            (computed in float64).
        """
        rows = self._factors.row_coefficients(latitudes)
        return rows.to(self.dtype).contiguous()

    def column_terms(self, longitudes: Tensor) -> Tensor:
        r"""The longitude parts $T_m(\lambda)$, once per column.

        Args:
            longitudes: ``(C,)`` longitudes in degrees.

        Returns:
            ``(C, 2L-1)`` in the network's dtype, ordered m = -(L-1)..L-1.
        """
        return self._factors.column_terms(longitudes).to(self.dtype)

    def first_layer(self, rows: Tensor, columns: Tensor) -> Tensor:
        """Pre-activations of the first layer (``W x + b``) for every cell.

        Args:
            rows: ``(R, 2L-1, hidden)`` from `row_coefficients`.
            columns: ``(C, 2L-1)`` from `column_terms`.

        Returns:
            ``(R * C, hidden)`` pre-activations, row-major over cells.
        """
        pre = torch.matmul(columns, rows)  # (R, C, hidden)
        pre += self._bias
        return pre.reshape(-1, pre.shape[-1])

    def embed(self, rows: Tensor, columns: Tensor) -> Tensor:
        """Embeddings of every cell of a block of rows and columns.

        Args:
            rows: ``(R, 2L-1, hidden)`` from `row_coefficients`.
            columns: ``(C, 2L-1)`` from `column_terms`.

        Returns:
            ``(R, C, embed_dim)`` in the network's dtype.
        """
        with torch.inference_mode():
            pre = self.first_layer(rows, columns)
            out = self.network.forward_from_linear(pre, scratch=self._scratch)
        return out.reshape(rows.shape[0], columns.shape[0], -1)


def plain_grid_embeddings(
    encoder: nn.Module, longitudes: Tensor, latitudes: Tensor
) -> Tensor:
    """Reference evaluation of a grid: the encoder at every cell centre.

    Args:
        encoder: Any location encoder.
        longitudes: ``(C,)`` longitudes in degrees.
        latitudes: ``(R,)`` latitudes in degrees.

    Returns:
        ``(R, C, embed_dim)`` float32 embeddings.
    """
    lat, lon = torch.meshgrid(
        latitudes.to(torch.float64), longitudes.to(torch.float64), indexing='ij'
    )
    coords = torch.stack([lon.reshape(-1), lat.reshape(-1)], dim=1)
    flat = embed_points(encoder, coords)
    return torch.from_numpy(flat).reshape(latitudes.shape[0], longitudes.shape[0], -1)


def embed_grid(
    encoder: nn.Module,
    grid: GridSpec,
    *,
    factorize: bool | None = None,
) -> npt.NDArray[np.float32]:
    """Embed every cell of a (small) grid in memory.

    Args:
        encoder: A location encoder (switched to eval mode).
        grid: The grid.
        factorize: Use `RowFactorization` (default: whenever it applies).

    Returns:
        ``(height, width, embed_dim)`` float32 embeddings, row 0 northernmost.
    """
    encoder.eval()
    rows: list[npt.NDArray[np.float32]] = []
    for _, block in iter_grid_windows(encoder, grid, factorize=factorize):
        rows.append(block)
    blocks = np.concatenate(rows, axis=0) if rows else np.empty((0, grid.width, 0))
    return np.ascontiguousarray(blocks.astype(np.float32, copy=False))


def iter_grid_windows(
    encoder: nn.Module,
    grid: GridSpec,
    *,
    block_rows: int = 256,
    block_cols: int | None = None,
    factorize: bool | None = None,
) -> Iterator[tuple[tuple[int, int, int, int], npt.NDArray[np.float32]]]:
    """Embed a grid window by window, row band by row band.

    Windows are ``block_rows`` rows by ``block_cols`` columns; each band's row
    coefficients are computed once and reused for all its windows.

    Args:
        encoder: A location encoder in eval mode.
        grid: The grid.
        block_rows: Rows per band.
        block_cols: Columns per window (default: the whole width).
        factorize: Use `RowFactorization` (default: whenever it applies).

    Yields:
        ``((row_off, col_off, rows, cols), embeddings)`` with embeddings of
        shape ``(rows, cols, embed_dim)``, float32.

    Raises:
        TypeError: If ``factorize`` is true but the encoder does not allow it.
    """
    block_cols = grid.width if block_cols is None else block_cols
    use_factors = (
        supports_row_factorization(encoder) if factorize is None else factorize
    )
    factorization = RowFactorization(encoder) if use_factors else None
    for row_off in range(0, grid.height, block_rows):
        row_end = min(row_off + block_rows, grid.height)
        latitudes = grid.latitudes(row_off, row_end)
        coefficients = (
            factorization.row_coefficients(latitudes) if factorization else None
        )
        for col_off in range(0, grid.width, block_cols):
            col_end = min(col_off + block_cols, grid.width)
            longitudes = grid.longitudes(col_off, col_end)
            if factorization is not None and coefficients is not None:
                columns = factorization.column_terms(longitudes)
                block = factorization.embed(coefficients, columns)
                values = block.to('cpu', torch.float32).numpy()
            else:
                values = plain_grid_embeddings(encoder, longitudes, latitudes).numpy()
            window = (row_off, col_off, row_end - row_off, col_end - col_off)
            yield window, values


@dataclasses.dataclass(frozen=True)
class GridResult:
    """What `write_grid_geotiff` wrote.

    Attributes:
        path: The GeoTIFF.
        preview: The PNG preview, if one was written.
        grid: The grid.
        bands: Number of bands (the embedding size).
        seconds: Wall time.
        factorized: Whether the row factorisation was used.
    """

    path: pathlib.Path
    preview: pathlib.Path | None
    grid: GridSpec
    bands: int
    seconds: float
    factorized: bool


@dataclasses.dataclass(frozen=True)
class GridEstimate:
    """What writing a grid will take, from its size and a timed sample.

    Attributes:
        cells: Number of cells.
        bands: Number of bands (the embedding size).
        raster_bytes: Uncompressed size of the float32 raster, cells x bands x
            4 bytes. How well embeddings compress cannot be known before they
            are computed (in our tests by a fifth to a quarter), so this is
            the figure to plan with.
        file_bytes: The disk space to reserve for the raster: ``raster_bytes``
            when compressed; without compression GDAL pads the edge tiles to
            whole tiles, and this counts the padding.
        preview_bytes: Uncompressed size of the PNG preview, cells x
            components bytes (0 without a preview).
        sample_cells: Cells embedded, compressed and written (in memory) to
            time the run; 0 when the grid is no larger than the sample and
            nothing was timed.
        seconds: Estimated wall time of the run, or None when not timed.
    """

    cells: int
    bands: int
    raster_bytes: int
    file_bytes: int
    preview_bytes: int
    sample_cells: int
    seconds: float | None

    @property
    def total_bytes(self) -> int:
        """The disk space to reserve: raster file plus preview."""
        return self.file_bytes + self.preview_bytes


def _geotiff_profile(
    grid: GridSpec, bands: int, tile_size: int, compress: str
) -> dict[str, Any]:
    profile: dict[str, Any] = {
        'driver': 'GTiff',
        'width': grid.width,
        'height': grid.height,
        'count': bands,
        'dtype': 'float32',
        'crs': 'EPSG:4326',
        'transform': grid.transform(),
        'tiled': True,
        'blockxsize': tile_size,
        'blockysize': tile_size,
        'interleave': 'band',
        'BIGTIFF': 'IF_SAFER',
    }
    if compress != 'none':
        profile.update(compress=compress, predictor=3)
    return profile


def _sample_grid(grid: GridSpec, rows: int, cols: int) -> GridSpec:
    """The ``rows`` x ``cols`` cells at the centre rows and western columns."""
    row_off = (grid.height - rows) // 2
    north = grid.max_lat - row_off * grid.resolution
    return GridSpec(
        grid.min_lon,
        north - rows * grid.resolution,
        grid.min_lon + cols * grid.resolution,
        north,
        grid.resolution,
        cols,
        rows,
    )


def estimate_grid_output(
    encoder: nn.Module,
    grid: GridSpec,
    *,
    compress: str = 'deflate',
    tile_size: int = 256,
    pca_components: int | None = None,
    factorize: bool | None = None,
    sample_cells: int = 16_384,
) -> GridEstimate:
    """Estimate the size and run time of `write_grid_geotiff`, before it runs.

    The size is exact arithmetic, cells x bands x 4 bytes (float32),
    uncompressed. The time is measured: about ``sample_cells`` cells from
    the middle of the grid are embedded the way the full run embeds them,
    then compressed and written into an in-memory GeoTIFF, and the rate is
    scaled to the whole grid (the PCA preview adds a little).

    Args:
        encoder: A location encoder (switched to eval mode).
        grid: The grid.
        compress: The compression the run will use.
        tile_size: The tile size the run will use.
        pca_components: Components of the preview (None: no preview).
        factorize: Use `RowFactorization` (default: whenever it applies).
        sample_cells: Size of the timed sample; grids no larger are not timed.

    Returns:
        The estimate.
    """
    import rasterio
    from rasterio.io import MemoryFile
    from rasterio.windows import Window

    encoder.eval()
    use_factors = (
        supports_row_factorization(encoder) if factorize is None else factorize
    )
    cells = grid.width * grid.height
    preview_bytes = cells * (pca_components or 0)
    padded_cells = cells
    if compress == 'none':
        padded_cells = (
            math.ceil(grid.width / tile_size) * math.ceil(grid.height / tile_size)
        ) * tile_size**2

    def estimate(bands: int, sample: int, seconds: float | None) -> GridEstimate:
        return GridEstimate(
            cells=cells,
            bands=bands,
            raster_bytes=cells * bands * 4,
            file_bytes=padded_cells * bands * 4,
            preview_bytes=preview_bytes,
            sample_cells=sample,
            seconds=seconds,
        )

    if cells <= sample_cells:
        return estimate(_band_count(encoder), 0, None)
    cols = min(grid.width, 256)
    rows = min(grid.height, max(1, sample_cells // cols))
    sample = _sample_grid(grid, rows, cols)
    # The first call pays one-off costs (CUDA start-up, allocations) that
    # would inflate the estimate; leave them out of the timing.
    warm_up = _sample_grid(grid, 1, min(cols, 8))
    next(iter_grid_windows(encoder, warm_up, factorize=use_factors))
    started = time.perf_counter()
    blocks = [
        (window, values)
        for window, values in iter_grid_windows(
            encoder, sample, block_rows=64, factorize=use_factors
        )
    ]
    bands = int(blocks[0][1].shape[2])
    profile = _geotiff_profile(sample, bands, 64, compress)
    with (
        rasterio.Env(GDAL_NUM_THREADS='ALL_CPUS', GDAL_CACHEMAX=256),
        MemoryFile() as memory,
        memory.open(**profile) as dataset,
    ):
        for (row_off, col_off, height, width), values in blocks:
            dataset.write(
                np.ascontiguousarray(values.transpose(2, 0, 1)),
                window=Window(col_off, row_off, width, height),
            )
    seconds = (time.perf_counter() - started) * cells / (rows * cols)
    return estimate(bands, rows * cols, seconds)


def _band_count(encoder: nn.Module) -> int:
    """The embedding size: declared by the encoder, else measured at one point."""
    width = embedding_width(encoder)
    if width is None:
        # Only for modules that do not declare their width.
        width = int(embed_points(encoder, [[0.0, 0.0]]).shape[1])
    return width


def _band_names(count: int, prefix: str) -> list[str]:
    width = max(3, len(str(count - 1)))
    return [f'{prefix}{index:0{width}d}' for index in range(count)]


def _pca_sample(
    encoder: nn.Module, grid: GridSpec, size: int, seed: int
) -> npt.NDArray[np.float32]:
    generator = np.random.default_rng(seed)
    cells = grid.width * grid.height
    chosen = (
        np.arange(cells)
        if cells <= size
        else generator.choice(cells, size=size, replace=False)
    )
    rows, cols = np.divmod(chosen, grid.width)
    lon = grid.min_lon + (cols + 0.5) * grid.resolution
    lat = grid.max_lat - (rows + 0.5) * grid.resolution
    coords = np.stack([np.clip(lon, -180, 180), np.clip(lat, -90, 90)], axis=1)
    return embed_points(encoder, coords)


def write_grid_geotiff(
    encoder: nn.Module,
    grid: GridSpec,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    tile_size: int = 256,
    chunk_cells: int = 1 << 16,
    compress: str = 'deflate',
    band_prefix: str = 'emb_',
    pca_components: int | None = None,
    preview_path: str | os.PathLike[str] | None = None,
    progress: bool = False,
    tags: Mapping[str, str] | None = None,
    factorize: bool | None = None,
) -> GridResult:
    """Write the embeddings of every grid cell as a multi-band GeoTIFF.

    The raster is float32, EPSG:4326, tiled (``tile_size`` square tiles),
    compressed (with the floating-point predictor) and BigTIFF when needed,
    with one band per embedding dimension described ``emb_000``,
    ``emb_001``, ... It is computed window by window (tile-aligned, about
    ``chunk_cells`` cells each), so memory stays bounded whatever the grid
    size, and written under a temporary name that is renamed on success.

    Args:
        encoder: A location encoder (switched to eval mode).
        grid: The grid.
        path: Output ``.tif``.
        overwrite: Replace existing outputs.
        tile_size: Tile width and height (a multiple of 16).
        chunk_cells: Approximate number of cells computed at once.
        compress: ``'deflate'``, ``'zstd'``, ``'lzw'`` or ``'none'``.
        band_prefix: Prefix of the band descriptions.
        pca_components: With 3 (RGB) or 1 (grey), also write a PNG preview of
            the first principal components (fitted on a sample of cells,
            stretched between their 1st and 99th percentiles).
        preview_path: Where to write the preview (default: ``path`` with a
            ``.png`` suffix).
        progress: Show a progress bar.
        tags: Extra GeoTIFF metadata tags.
        factorize: Use `RowFactorization` (default: whenever it applies).

    Returns:
        What was written.

    Raises:
        OutputExistsError: If an output exists and ``overwrite`` is false.
        ValueError: If an option is invalid.
    """
    import rasterio
    from rasterio.windows import Window

    if tile_size < 16 or tile_size % 16:
        raise ValueError(
            f'tile_size must be a positive multiple of 16, got {tile_size}'
        )
    if compress not in _COMPRESSIONS:
        raise ValueError(f'compress must be one of {_COMPRESSIONS}, got {compress!r}')
    if pca_components not in (None, 1, 3):
        raise ValueError(
            f'pca_components must be 1 (grey) or 3 (RGB), got {pca_components}'
        )
    started = time.perf_counter()
    encoder.eval()
    use_factors = (
        supports_row_factorization(encoder) if factorize is None else factorize
    )
    target = pathlib.Path(path)
    preview_target = None
    if pca_components:
        preview_target = (
            pathlib.Path(preview_path) if preview_path else target.with_suffix('.png')
        )
    projection = None
    band_count = _band_count(encoder)
    profile = _geotiff_profile(grid, band_count, tile_size, compress)
    block_cols = max(1, chunk_cells // (tile_size * tile_size)) * tile_size
    with contextlib.ExitStack() as outputs:
        # Both outputs appear together or not at all (the preview is renamed
        # into place just before the raster).
        temporary = outputs.enter_context(atomic_output(target, overwrite=overwrite))
        preview_temporary = (
            outputs.enter_context(atomic_output(preview_target, overwrite=overwrite))
            if preview_target is not None
            else None
        )
        image = None
        if pca_components and preview_temporary is not None:
            sample = _pca_sample(encoder, grid, 10_000, seed=0)
            projection = PCAProjection.fit(sample, pca_components)
            image = np.zeros((grid.height, grid.width, pca_components), np.uint8)
        with (
            rasterio.Env(GDAL_NUM_THREADS='ALL_CPUS', GDAL_CACHEMAX=256),
            rasterio.open(temporary, 'w', **profile) as dataset,
            tqdm(
                total=grid.width * grid.height,
                unit='cell',
                unit_scale=True,
                disable=not progress,
                desc='embedding grid',
            ) as bar,
        ):
            dataset.descriptions = tuple(_band_names(band_count, band_prefix))
            dataset.update_tags(**dict(tags or {}))
            for window, values in iter_grid_windows(
                encoder,
                grid,
                block_rows=tile_size,
                block_cols=block_cols,
                factorize=use_factors,
            ):
                row_off, col_off, rows, cols = window
                dataset.write(
                    np.ascontiguousarray(values.transpose(2, 0, 1)),
                    window=Window(col_off, row_off, cols, rows),
                )
                if image is not None and projection is not None:
                    image[row_off : row_off + rows, col_off : col_off + cols] = (
                        projection.to_uint8(values)
                    )
                bar.update(rows * cols)
        if image is not None and preview_temporary is not None:
            save_png(image, preview_temporary)
    return GridResult(
        path=target,
        preview=preview_target,
        grid=grid,
        bands=band_count,
        seconds=time.perf_counter() - started,
        factorized=use_factors,
    )
