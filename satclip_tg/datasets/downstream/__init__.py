"""Downstream data sets: labelled points built from packaged real data.

A downstream data set maps (lon, lat) points to a label (a regression target
or a class). Plugins add their own through the ``satclip_tg_downstream_tasks``
hook; the built-in ones derive from `PackagedDownstreamDataset` and read
files shipped inside registry packages (`SOURCES`, read by `readers`).
`load_points` caches the labelled points of any of them.
"""

from . import readers
from .api import (
    BUILTIN_DOWNSTREAM_DATASETS,
    BUILTIN_TASKS,
    get_downstream_dataset,
    get_task,
)
from .base import (
    DownstreamDataset,
    DownstreamTask,
    PackagedDownstreamDataset,
    PackagedTask,
    PointLabels,
    unavailable_reason,
)
from .cache import LABELS_VERSION, load_points
from .checks import check_point_labels
from .countries import Continent, Country
from .elevation import Elevation
from .era5 import AirTemperature, Precipitation
from .landcover import LandCover
from .landsea import LandSea
from .population import Population
from .sources import SOURCES, DataSource, DataUnavailableError, default_cache_dir

__all__ = [
    'BUILTIN_DOWNSTREAM_DATASETS',
    'BUILTIN_TASKS',
    'LABELS_VERSION',
    'SOURCES',
    'AirTemperature',
    'Continent',
    'Country',
    'DataSource',
    'DataUnavailableError',
    'DownstreamDataset',
    'DownstreamTask',
    'Elevation',
    'LandCover',
    'LandSea',
    'PackagedDownstreamDataset',
    'PackagedTask',
    'PointLabels',
    'Population',
    'Precipitation',
    'check_point_labels',
    'default_cache_dir',
    'get_downstream_dataset',
    'get_task',
    'load_points',
    'readers',
    'unavailable_reason',
]
