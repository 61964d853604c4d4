"""Reading points from tables and vector files, writing embeddings next to them.

Inputs: CSV (``.csv``, ``.tsv``, also gzipped), Parquet (``.parquet``,
``.pq``; GeoParquet too) with longitude/latitude columns, and any vector file
that GDAL reads through pyogrio (``.geojson``, ``.gpkg``, ``.shp``, ``.fgb``,
...). Vector geometries are reprojected to EPSG:4326; non-point geometries
are embedded at their centroid, with a warning.

Outputs (chosen by suffix):

* ``.parquet``: the input's columns followed by one float32 column per
  embedding dimension, ``emb_000``, ``emb_001``, ... (GeoParquet when the
  input had geometries);
* ``.csv``: the same columns as text (geometries as WKT);
* ``.npy``: the ``(N, D)`` float32 embedding array alone, rows in input order.
"""

import dataclasses
import os
import pathlib
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    'OUTPUT_SUFFIXES',
    'PointTable',
    'check_column_clash',
    'check_output_path',
    'describe_invalid',
    'embedding_columns',
    'invalid_rows',
    'read_points',
    'write_embeddings',
]

#: Output formats understood by `write_embeddings`.
OUTPUT_SUFFIXES = ('.parquet', '.csv', '.npy')
_CSV_SUFFIXES = ('.csv', '.tsv', '.txt')
_PARQUET_SUFFIXES = ('.parquet', '.pq', '.geoparquet')
_LON_NAMES = ('lon', 'longitude', 'lng', 'long', 'x')
_LAT_NAMES = ('lat', 'latitude', 'y')


@dataclasses.dataclass
class PointTable:
    """Points read from a file, with the rest of the file's columns.

    Attributes:
        frame: The input table (a `geopandas.GeoDataFrame` for vector files),
            rows in file order.
        lon: ``(N,)`` float64 longitudes (NaN where missing or not a number).
        lat: ``(N,)`` float64 latitudes (NaN where missing or not a number).
        raw_lon: The longitude values as read, for error messages.
        raw_lat: The latitude values as read, for error messages.
        origin: How the coordinates were obtained (for the summary).
    """

    frame: Any
    lon: npt.NDArray[np.float64]
    lat: npt.NDArray[np.float64]
    raw_lon: npt.NDArray[Any]
    raw_lat: npt.NDArray[Any]
    origin: str

    def __len__(self) -> int:
        """Number of rows."""
        return int(self.lon.shape[0])

    @property
    def coords(self) -> npt.NDArray[np.float64]:
        """``(N, 2)`` (lon, lat) in degrees."""
        return np.stack([self.lon, self.lat], axis=1)


def _suffix(path: pathlib.Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in ('.gz', '.bz2', '.zip', '.xz'):
        return suffixes[-2]
    return suffixes[-1] if suffixes else ''


def _pick_column(
    columns: list[str], given: str | None, names: tuple[str, ...], what: str, flag: str
) -> str:
    if given is not None:
        if given not in columns:
            raise ValueError(
                f'{flag} {given!r} is not a column of the input; columns: {columns}'
            )
        return given
    lowered = {str(column).lower(): column for column in columns}
    for name in names:
        if name in lowered:
            return str(lowered[name])
    raise ValueError(
        f'no {what} column found (looked for {", ".join(names)}, any case); '
        f'columns: {columns}; name it with {flag}'
    )


def _numeric(values: Any) -> npt.NDArray[np.float64]:
    import pandas as pd

    converted = pd.to_numeric(values, errors='coerce')
    return np.asarray(converted, dtype=np.float64)


def read_points(
    path: str | os.PathLike[str],
    lon_col: str | None = None,
    lat_col: str | None = None,
) -> PointTable:
    """Read points from a CSV, Parquet or vector file.

    Args:
        path: The input file.
        lon_col: Longitude column (default: the first of lon, longitude, lng,
            long, x; any case). Vector files use their geometry unless both
            columns are given.
        lat_col: Latitude column (default: lat, latitude or y).

    Returns:
        The table with parsed coordinates; unparseable values become NaN (and
        are reported by `invalid_rows`), nothing is dropped.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the columns cannot be found or the format is unknown.
    """
    import pandas as pd

    source = pathlib.Path(path)
    if not source.is_file():
        raise FileNotFoundError(f'input file {str(source)!r} does not exist')
    suffix = _suffix(source)
    if suffix in _CSV_SUFFIXES:
        frame = pd.read_csv(source, sep='\t' if suffix == '.tsv' else ',')
    elif suffix in _PARQUET_SUFFIXES:
        frame = _read_parquet(source, lon_col, lat_col)
    else:
        import geopandas

        try:
            frame = geopandas.read_file(source, engine='pyogrio')
        except Exception as error:
            raise ValueError(
                f'could not read {source} as a vector file ({error}); inputs are '
                f'CSV, Parquet or a vector format GDAL reads (GeoJSON, '
                f'GeoPackage, ...)'
            ) from error
    columns = [str(column) for column in frame.columns]
    geometry_name = getattr(frame, '_geometry_column_name', None)
    use_geometry = geometry_name is not None and (lon_col is None or lat_col is None)
    if use_geometry and lon_col is None and lat_col is None:
        return _from_geometry(frame, source)
    lon_name = _pick_column(columns, lon_col, _LON_NAMES, 'longitude', '--lon-col')
    lat_name = _pick_column(columns, lat_col, _LAT_NAMES, 'latitude', '--lat-col')
    raw_lon = np.asarray(frame[lon_name].to_numpy(), dtype=object)
    raw_lat = np.asarray(frame[lat_name].to_numpy(), dtype=object)
    return PointTable(
        frame=frame,
        lon=_numeric(frame[lon_name]),
        lat=_numeric(frame[lat_name]),
        raw_lon=raw_lon,
        raw_lat=raw_lat,
        origin=f'columns {lon_name!r} (lon) and {lat_name!r} (lat)',
    )


def _read_parquet(
    source: pathlib.Path, lon_col: str | None, lat_col: str | None
) -> Any:
    import pandas as pd
    import pyarrow.parquet as pq

    metadata = pq.read_schema(source).metadata or {}
    if b'geo' in metadata and (lon_col is None or lat_col is None):
        import geopandas

        return geopandas.read_parquet(source)
    return pd.read_parquet(source)


def _from_geometry(frame: Any, source: pathlib.Path) -> PointTable:
    geometry = frame.geometry
    missing = np.asarray(geometry.isna() | geometry.is_empty, dtype=bool)
    kinds = np.asarray(geometry.geom_type.fillna(''), dtype=object)
    other = ~missing & (kinds != 'Point')
    crs = frame.crs
    if crs is None:
        warnings.warn(
            f'{source} has no CRS; its coordinates are taken as (lon, lat) in '
            f'degrees (EPSG:4326)',
            UserWarning,
            stacklevel=3,
        )
    points = geometry.copy()
    if other.any():
        examples = sorted({str(kind) for kind in kinds[other]})
        with warnings.catch_warnings():
            # Centroids in degrees are planar approximations; said below.
            warnings.simplefilter('ignore', UserWarning)
            points[other] = geometry[other].centroid
        warnings.warn(
            f'{int(other.sum())} of {len(frame)} geometries in {source} are not '
            f'points ({", ".join(examples)}); their centroids (computed in the '
            f"file's CRS) are embedded",
            UserWarning,
            stacklevel=3,
        )
    if crs is not None and not crs.equals('EPSG:4326'):
        points = points.to_crs('EPSG:4326')
    lon = np.full(len(frame), np.nan)
    lat = np.full(len(frame), np.nan)
    present = ~missing
    if present.any():
        lon[present] = np.asarray(points[present].x, dtype=np.float64)
        lat[present] = np.asarray(points[present].y, dtype=np.float64)
    raw_lon = np.empty(len(frame), dtype=object)
    raw_lat = np.empty(len(frame), dtype=object)
    for row, gone in enumerate(missing):
        raw_lon[row] = 'missing geometry' if gone else float(lon[row])
        raw_lat[row] = 'missing geometry' if gone else float(lat[row])
    return PointTable(
        frame=frame,
        lon=lon,
        lat=lat,
        raw_lon=raw_lon,
        raw_lat=raw_lat,
        origin='geometries'
        + (f' ({int(other.sum())} non-point: centroids)' if other.any() else ''),
    )


def invalid_rows(lon: npt.ArrayLike, lat: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Rows whose coordinates are missing, not finite or out of range.

    Args:
        lon: Longitudes in degrees.
        lat: Latitudes in degrees.

    Returns:
        Boolean mask, true for invalid rows.
    """
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    with np.errstate(invalid='ignore'):
        valid = np.isfinite(x) & np.isfinite(y) & (np.abs(x) <= 180) & (np.abs(y) <= 90)
    return ~valid


def describe_invalid(
    table: PointTable, mask: npt.NDArray[np.bool_], limit: int = 5
) -> str:
    """Say how many rows are invalid and show the first few.

    Args:
        table: The points.
        mask: Invalid rows, from `invalid_rows`.
        limit: How many rows to show.

    Returns:
        A message such as ``'3 of 100 rows have invalid coordinates ...'``.
    """
    rows = np.flatnonzero(mask)
    shown = []
    for row in rows[:limit]:
        shown.append(f'{row} (lon={table.raw_lon[row]!r}, lat={table.raw_lat[row]!r})')
    more = f', ... ({len(rows) - limit} more)' if len(rows) > limit else ''
    hint = ''
    lon, lat = table.lon[rows], table.lat[rows]
    with np.errstate(invalid='ignore'):
        swapped = (np.abs(lat) > 90) & (np.abs(lat) <= 180) & (np.abs(lon) <= 90)
    if swapped.any():
        hint = ' Some rows look like (lat, lon): check --lon-col and --lat-col.'
    return (
        f'{len(rows)} of {len(table)} rows have invalid coordinates (missing, not a '
        f'number, or outside lon [-180, 180] / lat [-90, 90]); rows are counted '
        f'from 0 in file order: {"; ".join(shown)}{more}.{hint}'
    )


def embedding_columns(count: int, prefix: str = 'emb_') -> list[str]:
    """Names of the embedding columns: ``emb_000``, ``emb_001``, ...

    Args:
        count: Embedding size D.
        prefix: Column-name prefix.

    Returns:
        D names, zero-padded to at least three digits.
    """
    width = max(3, len(str(max(count - 1, 0))))
    return [f'{prefix}{index:0{width}d}' for index in range(count)]


def check_output_path(path: str | os.PathLike[str]) -> str:
    """Check an output suffix and return its format.

    Args:
        path: The output path.

    Returns:
        ``'parquet'``, ``'csv'`` or ``'npy'``.

    Raises:
        ValueError: If the suffix is not one of `OUTPUT_SUFFIXES`.
    """
    suffix = pathlib.Path(path).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ValueError(
            f'output {str(path)!r} must end in one of {", ".join(OUTPUT_SUFFIXES)}'
        )
    return suffix[1:]


def check_column_clash(table: PointTable, names: list[str]) -> None:
    """Refuse embedding column names that the input already uses.

    Args:
        table: The points and their table.
        names: The embedding column names.

    Raises:
        ValueError: If a name is taken.
    """
    taken = {str(column) for column in table.frame.columns}
    clash = [name for name in names if name in taken]
    if clash:
        raise ValueError(
            f'the input already has columns {clash[:3]}; choose another --column-prefix'
        )


def write_embeddings(
    table: PointTable,
    embeddings: npt.NDArray[np.float32],
    path: str | os.PathLike[str],
    prefix: str = 'emb_',
) -> None:
    """Write embeddings (and the input's columns) to ``path``; not atomic.

    Use it inside `satclip_tg.atomic.atomic_output` for an all-or-nothing
    write. The format follows the suffix of ``path`` (a temporary name keeps
    the suffix of the final one).

    Args:
        table: The points and their table.
        embeddings: ``(N, D)`` float32 embeddings in row order.
        path: Output file ending in ``.parquet``, ``.csv`` or ``.npy``.
        prefix: Prefix of the embedding column names.

    Raises:
        ValueError: If an embedding column name is already an input column.
    """
    kind = check_output_path(path)
    values = np.ascontiguousarray(embeddings, dtype=np.float32)
    if kind == 'npy':
        with open(path, 'wb') as handle:
            np.save(handle, values)
    else:
        _write_table(table, values, path, prefix, kind)


def _write_table(
    table: PointTable,
    values: npt.NDArray[np.float32],
    path: str | os.PathLike[str],
    prefix: str,
    kind: str,
) -> None:
    import pandas as pd

    frame = table.frame
    names = embedding_columns(values.shape[1], prefix)
    check_column_clash(table, names)
    block = pd.DataFrame(values, index=frame.index, columns=names)
    geometry_name = getattr(frame, '_geometry_column_name', None)
    if kind == 'csv':
        plain = pd.DataFrame(frame)
        if geometry_name is not None:
            plain = plain.assign(**{geometry_name: frame.geometry.to_wkt()})
        pd.concat([plain, block], axis=1).to_csv(path, index=False)
        return
    combined = pd.concat([frame, block], axis=1)
    if geometry_name is not None:
        import geopandas

        output = geopandas.GeoDataFrame(combined, geometry=geometry_name, crs=frame.crs)
        output.to_parquet(path)
    else:
        combined.to_parquet(path)
