"""The cache of labelled points, shared by every encoder, run and data module.

`load_points` caches the points of any registered downstream data set
(built-in or not) in ``CACHE/tasks``, keyed by its name, options, sample size,
seed and data (the fingerprints of a built-in data set's source files, a
plugin's optional ``data_version``), and checks them (`check_point_labels`)
before they are used. ``refresh=True`` ignores and replaces a cached file.
"""

import hashlib
import json
import pathlib
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from .api import get_downstream_dataset
from .base import (
    DownstreamDataset,
    PackagedDownstreamDataset,
    PointLabels,
    unavailable_reason,
)
from .checks import check_point_labels
from .sources import SOURCES, DataUnavailableError, default_cache_dir

__all__ = ['LABELS_VERSION', 'load_points']

#: Bumped whenever the built-in labels change, so that stale caches are ignored.
LABELS_VERSION = 1


def load_points(
    name: str,
    num_points: int,
    seed: int = 0,
    *,
    cache_dir: str | pathlib.Path | None = None,
    options: Mapping[str, object] | None = None,
    task: DownstreamDataset | None = None,
    refresh: bool = False,
) -> PointLabels:
    """Labelled points of a registered downstream data set, cached.

    The cache file ``CACHE/tasks/NAME-nN-sSEED-HASH-vVERSION.npz`` is keyed by
    the registered name, its options (`PackagedDownstreamDataset.options` or the
    ``options`` given), its data, the sample size and the seed. The data
    part of ``HASH`` is the content fingerprint of each source file of a
    built-in data set (`DataSource.fingerprint`) and the ``data_version``
    attribute of any data set that has one: a plugin whose labels change
    should change its ``data_version`` (else pass ``refresh=True``).

    Args:
        name: The registered name.
        num_points: Number of points.
        seed: Seed.
        cache_dir: The benchmark cache folder (default: `default_cache_dir`).
        options: Keyword arguments of the factory.
        task: An already built downstream data set (``options`` then only name
            the cache).
        refresh: Recompute the points even if a cached file exists.

    Returns:
        The labelled points.

    Raises:
        DataUnavailableError: If the data set reports itself unavailable.
        ValueError: If the data set returned invalid points (coordinates outside
            [-180, 180] x [-90, 90] or not finite, targets not finite, class
            labels that are not integers in ``[0, num_classes)``), naming the
            bad rows (counted from 0) and their number.
    """
    folder = pathlib.Path(cache_dir) if cache_dir else default_cache_dir()
    options = dict(options or {})
    if task is None:
        task = get_downstream_dataset(name, cache_dir=folder, **options)
    key_options = (
        task.options() if isinstance(task, PackagedDownstreamDataset) else options
    )
    digest = hashlib.sha256(
        json.dumps([key_options, _data_key(task)], sort_keys=True, default=str).encode()
    ).hexdigest()[:8]
    path = (
        folder
        / 'tasks'
        / f'{name}-n{num_points}-s{seed}-{digest}-v{LABELS_VERSION}.npz'
    )
    num_classes = getattr(task, 'num_classes', None)
    if path.is_file() and not refresh:
        cached = PointLabels.load(path)
        # A file cached before points were checked may hold anything.
        check_point_labels(
            cached.coords,
            cached.labels,
            cached.kind,
            num_classes,
            source=f'task {name!r} (cached in {path})',
        )
        return cached
    reason = unavailable_reason(task)
    if reason is not None:
        raise DataUnavailableError(f'task {name!r} is unavailable: {reason}')
    coords, labels = task.load(num_points, seed)
    # Before the casts below, which would turn 1.7 into class 1 and NaN into
    # an arbitrary integer.
    check_point_labels(
        np.asarray(coords),
        np.asarray(labels),
        task.task_type,
        num_classes,
        source=f'task {name!r}',
    )
    label_array: NDArray[np.float64] | NDArray[np.int64] = (
        np.asarray(labels, dtype=np.float64)
        if task.task_type == 'regression'
        else np.asarray(labels, dtype=np.int64)
    )
    classes = tuple(getattr(task, 'classes', ()) or ())
    if task.task_type == 'classification' and not classes:
        classes = tuple(str(i) for i in range(int(task.num_classes or 0)))
    points = PointLabels(
        name,
        task.task_type,
        np.asarray(coords, dtype=np.float64),
        label_array,
        classes,
        str(getattr(task, 'target', '')),
    )
    points.save(path)
    return points


def _data_key(task: DownstreamDataset) -> dict[str, object]:
    # What the labels are computed from, so that changed data give a new
    # cache file instead of stale points: the source files' fingerprints
    # (size and first and last MiB) and a plugin's own version string.
    key: dict[str, object] = {}
    version = getattr(task, 'data_version', None)
    if version is not None:
        key['data_version'] = str(version)
    if isinstance(task, PackagedDownstreamDataset):
        keys = sorted({*task.source_keys, *(('landmask',) if task.land_only else ())})
        key['sources'] = {k: SOURCES[k].fingerprint(task.cache_dir) for k in keys}
    return key
