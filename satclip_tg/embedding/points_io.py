"""Reading points from tables and vector files, writing embeddings next to them.

Inputs: CSV (``.csv``, ``.tsv``, also gzipped), Parquet (``.parquet``,
``.pq``; GeoParquet too) with longitude/latitude columns, and any vector file
that GDAL reads through pyogrio (``.geojson``, ``.gpkg``, ``.shp``, ``.fgb``,
...). Vector geometries are reprojected to EPSG:4326; non-point geometries
are embedded at their centroid, with a warning.

Nothing is guessed silently: a file that cannot be read, an ambiguous or
duplicated coordinate column, a column of booleans or text, or a layer
without CRS whose coordinates cannot be degrees is refused with a
`ValueError` that names the file or column.

Outputs (chosen by suffix):

* ``.parquet``: the input's columns followed by one float32 column per
  embedding dimension, ``emb_000``, ``emb_001``, ... (GeoParquet when the
  input had geometries);
* ``.csv``: the same columns as text (geometries as WKT);
* ``.npy``: the ``(N, D)`` float32 embedding array alone, rows in input order.
"""

import codecs
import dataclasses
import gzip
import os
import pathlib
import warnings
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    'OUTPUT_SUFFIXES',
    'PointTable',
    'check_column_clash',
    'check_encoding',
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
# Magic numbers of files that are easily misnamed .csv, to say what they are.
_MAGIC = (
    (b'\x1f\x8b', 'gzip-compressed: add .gz to its name'),
    (b'PAR1', 'a Parquet file: name it .parquet'),
    (b'SQLite format 3\x00', 'an SQLite database (GeoPackage?): name it .gpkg'),
    (b'PK\x03\x04', 'a ZIP archive (an Excel workbook?): export it as CSV'),
)
# Readers of CSV text fail with these on broken, truncated or binary files.
_CSV_ERRORS = (OSError, ValueError, EOFError, zlib.error)


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
    for name in names:
        matches = [column for column in columns if column.lower() == name]
        if len(matches) > 1:
            # Taking either would be a guess; the file may hold two versions.
            raise ValueError(
                f'columns {" and ".join(map(repr, matches))} both look like the '
                f'{what}; name the one to use with {flag}'
            )
        if matches:
            return matches[0]
    raise ValueError(
        f'no {what} column found (looked for {", ".join(names)}, any case); '
        f'columns: {columns}; name it with {flag}'
    )


def _shown(value: Any) -> str:
    """A cell value for a message: NumPy scalars as their Python values."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _numeric(values: Any, name: str, what: str, flag: str) -> npt.NDArray[np.float64]:
    """Degrees from a column, refusing columns that cannot hold degrees.

    Single unparseable values become NaN (reported row by row as invalid);
    a column of booleans, dates or text is refused as a whole, since
    ``pd.to_numeric`` would turn True into 1 degree or report every row.
    """
    import pandas as pd
    from pandas.api import types

    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    dtype = values.dtype
    present = values.notna().to_numpy() & (values.astype(str) != '').to_numpy()
    first = int(np.flatnonzero(present)[0]) if present.any() else 0
    shown = f'row {first}: {_shown(values.iloc[first])}' if len(values) else 'empty'
    if types.is_bool_dtype(dtype):
        raise ValueError(
            f'the {what} column {name!r} holds booleans ({shown}), not degrees; '
            f'name the right column with {flag}'
        )
    if types.is_numeric_dtype(dtype) and not types.is_complex_dtype(dtype):
        return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan))
    if not (types.is_object_dtype(dtype) or types.is_string_dtype(dtype)):
        raise ValueError(
            f'the {what} column {name!r} holds {dtype} values ({shown}), not '
            f'degrees; name the right column with {flag}'
        )
    objects = values.astype(object)
    # Python booleans are numbers to pd.to_numeric; here they are not.
    booleans = objects.map(lambda value: isinstance(value, bool | np.bool_))
    converted = pd.to_numeric(objects.mask(booleans), errors='coerce')
    if present.any() and not converted.notna().any():
        raise ValueError(
            f'the {what} column {name!r} is not numeric: no value is a number in '
            f'degrees ({shown}); name the right column with {flag}, or convert it '
            f'to decimal degrees'
        )
    return np.asarray(converted, dtype=np.float64)


def check_encoding(encoding: str) -> str:
    """Check a text encoding name.

    Args:
        encoding: A name such as ``'utf-8'`` or ``'latin-1'``.

    Returns:
        The codec's canonical name.

    Raises:
        ValueError: If Python knows no such encoding.
    """
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(
            f'unknown text encoding {encoding!r} (--encoding); use a Python codec '
            f'name such as utf-8, latin-1, cp1252 or utf-16'
        ) from None


def read_points(
    path: str | os.PathLike[str],
    lon_col: str | None = None,
    lat_col: str | None = None,
    encoding: str = 'utf-8',
) -> PointTable:
    """Read points from a CSV, Parquet or vector file.

    Args:
        path: The input file.
        lon_col: Longitude column (default: the first of lon, longitude, lng,
            long, x; any case). Vector files use their geometry unless both
            columns are given.
        lat_col: Latitude column (default: lat, latitude or y).
        encoding: Text encoding of CSV files.

    Returns:
        The table with parsed coordinates; unparseable values become NaN (and
        are reported by `invalid_rows`), nothing is dropped.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file cannot be read, the format is unknown, the
            coordinate columns are missing, ambiguous, duplicated or not
            numeric, or a layer without CRS is evidently not in degrees.
    """
    source = pathlib.Path(path)
    if source.is_dir():
        raise ValueError(f'input {str(source)!r} is a folder, not a file')
    if not source.is_file():
        raise FileNotFoundError(f'input file {str(source)!r} does not exist')
    suffix = _suffix(source)
    header: list[str] | None = None
    if suffix in _CSV_SUFFIXES:
        frame, header = _read_csv(source, '\t' if suffix == '.tsv' else ',', encoding)
    elif suffix in _PARQUET_SUFFIXES:
        frame = _read_parquet(source, lon_col, lat_col)
    else:
        import geopandas

        try:
            frame = geopandas.read_file(source, engine='pyogrio')
        except Exception as error:
            # pyogrio and GDAL raise many types for unreadable files.
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
    if lon_name == lat_name:
        raise ValueError(
            f'the longitude and the latitude would both be read from column '
            f'{lon_name!r}; give two different columns with --lon-col and --lat-col'
        )
    # pandas renames a repeated CSV header ('lon', 'lon' -> 'lon', 'lon.1'), so
    # duplicates show only in the header as written.
    written = header if header is not None and len(header) == len(columns) else None
    for name in (lon_name, lat_name):
        label = written[columns.index(name)] if written else name
        count = (written or columns).count(label)
        if count > 1:
            raise ValueError(
                f'{source} has {count} columns named {label!r}; which one holds '
                f'the coordinates is ambiguous: rename the others'
            )
    raw_lon = np.asarray(frame[lon_name].to_numpy(), dtype=object)
    raw_lat = np.asarray(frame[lat_name].to_numpy(), dtype=object)
    return PointTable(
        frame=frame,
        lon=_numeric(frame[lon_name], lon_name, 'longitude', '--lon-col'),
        lat=_numeric(frame[lat_name], lat_name, 'latitude', '--lat-col'),
        raw_lon=raw_lon,
        raw_lat=raw_lat,
        origin=f'columns {lon_name!r} (lon) and {lat_name!r} (lat)',
    )


def _head(source: pathlib.Path, size: int = 8192) -> bytes | None:
    """The first bytes of a file (decompressed for .gz; None for other archives)."""
    suffix = source.suffix.lower()
    if suffix in ('.bz2', '.zip', '.xz', '.zst'):
        return None
    opener = gzip.open if suffix == '.gz' else open
    with opener(source, 'rb') as handle:
        data: bytes = handle.read(size)
    return data


def _read_csv(
    source: pathlib.Path, separator: str, encoding: str
) -> tuple[Any, list[str]]:
    """Read a CSV file and its header row as written (before pandas renames)."""
    import pandas as pd

    check_encoding(encoding)
    try:
        head = _head(source)
    except _CSV_ERRORS as error:
        raise ValueError(f'could not read {source}: {error}') from error
    for magic, meaning in _MAGIC:
        if head is not None and head.startswith(magic):
            raise ValueError(f'could not read {source} as CSV text: it is {meaning}')
    wide = codecs.lookup(encoding).name.startswith(('utf-16', 'utf-32'))
    if head is not None and b'\x00' in head and not wide:
        raise ValueError(
            f'could not read {source} as CSV text: it contains NUL bytes, so it is '
            f'a binary file (or UTF-16 text: then pass --encoding utf-16)'
        )
    try:
        frame = pd.read_csv(source, sep=separator, encoding=encoding)
        header = pd.read_csv(
            source,
            sep=separator,
            encoding=encoding,
            header=None,
            nrows=1,
            dtype=str,
            keep_default_na=False,
        )
    except UnicodeDecodeError as error:
        byte = error.object[error.start : error.start + 1]
        raise ValueError(
            f'could not read {source}: it is not {encoding} text (byte '
            f'0x{byte.hex()} is not valid {encoding}); pass its encoding with '
            f'--encoding, e.g. --encoding latin-1 or --encoding cp1252'
        ) from error
    except _CSV_ERRORS as error:
        raise ValueError(f'could not read {source} as CSV: {error}') from error
    return frame, [str(name) for name in header.iloc[0].tolist()]


def _read_parquet(
    source: pathlib.Path, lon_col: str | None, lat_col: str | None
) -> Any:
    import pandas as pd
    import pyarrow
    import pyarrow.parquet as pq

    # ArrowInvalid is also a ValueError; all of these mean a broken file.
    errors = (OSError, ValueError, pyarrow.ArrowException)
    try:
        schema = pq.read_schema(source)
    except errors as error:
        raise ValueError(f'could not read {source} as Parquet: {error}') from error
    names = list(schema.names)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f'{source} has more than one column named '
            f'{", ".join(map(repr, repeated))}; column names must be unique'
        )
    try:
        if b'geo' in (schema.metadata or {}) and (lon_col is None or lat_col is None):
            import geopandas

            return geopandas.read_parquet(source)
        return pd.read_parquet(source)
    except errors as error:
        raise ValueError(f'could not read {source} as Parquet: {error}') from error


def _from_geometry(frame: Any, source: pathlib.Path) -> PointTable:
    geometry = frame.geometry
    missing = np.asarray(geometry.isna() | geometry.is_empty, dtype=bool)
    kinds = np.asarray(geometry.geom_type.fillna(''), dtype=object)
    other = ~missing & (kinds != 'Point')
    crs = frame.crs
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
        try:
            points = points.to_crs('EPSG:4326')
        except Exception as error:
            # pyproj raises CRSError or ProjError (RuntimeError) for CRSs with
            # no path to EPSG:4326, e.g. local engineering ones.
            raise ValueError(
                f'could not reproject {source} from its CRS ({crs.name}) to '
                f'EPSG:4326 longitude/latitude: {error}'
            ) from error
    lon = np.full(len(frame), np.nan)
    lat = np.full(len(frame), np.nan)
    present = ~missing
    if present.any():
        lon[present] = np.asarray(points[present].x, dtype=np.float64)
        lat[present] = np.asarray(points[present].y, dtype=np.float64)
    if crs is None:
        _check_degrees_without_crs(source, lon, lat)
    elif crs.is_geographic:
        _check_degrees_in_geographic_crs(source, crs.name, lon, lat)
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


def _outside_degrees(
    lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    with np.errstate(invalid='ignore'):
        return np.isfinite(lon) & ((np.abs(lon) > 180) | (np.abs(lat) > 90))


def _check_degrees_in_geographic_crs(
    source: pathlib.Path,
    name: str,
    lon: npt.NDArray[np.float64],
    lat: npt.NDArray[np.float64],
) -> None:
    """Refuse a layer labelled in degrees whose coordinates are none of them."""
    outside = _outside_degrees(lon, lat)
    present = np.isfinite(lon) & np.isfinite(lat)
    # A few bad rows are invalid rows (see --on-invalid); all of them means
    # a wrong label, e.g. GDAL reads every GeoJSON file as EPSG:4326.
    if present.any() and outside[present].all():
        row = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f'{source} says its CRS is {name} (degrees), but none of its '
            f'coordinates are longitude/latitude degrees (row {row}: '
            f'x={lon[row]:.6g}, y={lat[row]:.6g}); its CRS is probably wrong or '
            f'missing (GeoJSON is always read as EPSG:4326). Save it with its '
            f'real CRS and run again'
        )


def _check_degrees_without_crs(
    source: pathlib.Path,
    lon: npt.NDArray[np.float64],
    lat: npt.NDArray[np.float64],
) -> None:
    """Take a layer without CRS as degrees only if its coordinates can be."""
    outside = _outside_degrees(lon, lat)
    if outside.any():
        # Metres read as degrees would be a silent wrong answer; a few bad
        # rows in a degree file are refused too, since the two look alike.
        row = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f'{source} has no CRS and {int(outside.sum())} of {len(lon)} points '
            f'are not in longitude/latitude degrees (row {row}: '
            f'x={lon[row]:.6g}, y={lat[row]:.6g}); it is probably in a projected '
            f'CRS. Set its CRS (e.g. ogr2ogr -a_srs EPSG:32632 fixed.gpkg '
            f'{source.name}, or GeoDataFrame.set_crs) and run again'
        )
    warnings.warn(
        f'{source} has no CRS; its coordinates all lie within degree ranges, so '
        f'they are taken as (lon, lat) in degrees (EPSG:4326)',
        UserWarning,
        stacklevel=4,
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
