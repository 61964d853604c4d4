"""Look up downstream data sets: the built-ins and the registry.

`get_downstream_dataset` builds any registered downstream data set, built-in
(`BUILTIN_DOWNSTREAM_DATASETS`) or from a plugin's
``satclip_tg_downstream_tasks`` hook.
"""

import inspect
from collections.abc import Callable, Mapping

from .base import DownstreamDataset, PackagedDownstreamDataset
from .countries import Continent, Country
from .elevation import Elevation
from .era5 import AirTemperature, Precipitation
from .landcover import LandCover
from .landsea import LandSea
from .population import Population

__all__ = [
    'BUILTIN_DOWNSTREAM_DATASETS',
    'BUILTIN_TASKS',
    'get_downstream_dataset',
    'get_task',
]

#: The built-in downstream data sets by registered name (values: factories).
BUILTIN_DOWNSTREAM_DATASETS: Mapping[str, Callable[..., PackagedDownstreamDataset]] = {
    dataset.name: dataset
    for dataset in (
        AirTemperature,
        Precipitation,
        Elevation,
        LandCover,
        Country,
        Continent,
        LandSea,
        Population,
    )
}

#: The former name of `BUILTIN_DOWNSTREAM_DATASETS`.
BUILTIN_TASKS = BUILTIN_DOWNSTREAM_DATASETS


def get_downstream_dataset(name: str, **options: object) -> DownstreamDataset:
    """Build a registered downstream data set (built-in or from a plugin).

    ``cache_dir`` is passed on only to factories that accept it.

    Args:
        name: The registered name.
        **options: Keyword arguments of the factory.

    Returns:
        The downstream data set.

    Raises:
        UnknownComponentError: If no downstream data set has that name.
    """
    # Imported here: the registry collects the built-ins from this package.
    from ...plugins import get_registry

    factory = get_registry().get('downstream_task', name).factory
    if 'cache_dir' in options and not _accepts(factory, 'cache_dir'):
        options = {k: v for k, v in options.items() if k != 'cache_dir'}
    dataset: DownstreamDataset = factory(**options)
    return dataset


def _accepts(factory: Callable[..., object], keyword: str) -> bool:
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return keyword in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


#: The former name of `get_downstream_dataset`.
get_task = get_downstream_dataset
