"""Embedding many points, grids and files with a location encoder.

* `embed_points`: scattered (lon, lat) points, chunked, with the fast paths
  the encoder's parts offer (`satclip_tg.embedding.capabilities`).
* `GridSpec`, `RowFactorization`, `embed_grid`, `write_grid_geotiff`:
  regular grids, evaluated exactly with the row factorisation, written as
  multi-band GeoTIFFs.
* `read_points`, `write_embeddings`: the file formats of `satclip-tg embed`.
* `PCAProjection`, `principal_components_rgb`: principal components as
  colours, for preview maps and the demo's embedding map.
"""

from .engine import DEFAULT_BATCH_SIZE, embed_points, embedding_width
from .grid import (
    GridResult,
    GridSpec,
    RowFactorization,
    embed_grid,
    plain_grid_embeddings,
    supports_row_factorization,
    write_grid_geotiff,
)
from .pca import PCAProjection, principal_components_rgb
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
    'embedding_width',
    'invalid_rows',
    'plain_grid_embeddings',
    'principal_components_rgb',
    'read_points',
    'supports_row_factorization',
    'write_embeddings',
    'write_grid_geotiff',
]
