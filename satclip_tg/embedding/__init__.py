"""Embedding many points, grids and files with a location encoder.

* `embed_points`: scattered (lon, lat) points, chunked, fused CPU path.
* `GridSpec`, `RowFactorization`, `embed_grid`, `write_grid_geotiff`:
  regular grids, evaluated exactly with the row factorisation, written as
  multi-band GeoTIFFs.
* `read_points`, `write_embeddings`: the file formats of `satclip-tg embed`.
* `PCAProjection`: principal components for preview maps.
"""

from .engine import DEFAULT_BATCH_SIZE, embed_points
from .grid import (
    GridResult,
    GridSpec,
    RowFactorization,
    embed_grid,
    plain_grid_embeddings,
    supports_row_factorization,
    write_grid_geotiff,
)
from .pca import PCAProjection
from .points_io import PointTable, invalid_rows, read_points, write_embeddings

__all__ = [
    'DEFAULT_BATCH_SIZE',
    'GridResult',
    'GridSpec',
    'PCAProjection',
    'PointTable',
    'RowFactorization',
    'embed_grid',
    'embed_points',
    'invalid_rows',
    'plain_grid_embeddings',
    'read_points',
    'supports_row_factorization',
    'write_embeddings',
    'write_grid_geotiff',
]
