"""The feature cache's on-disk layout and its manifest.

A cache is a folder::

    DIR/
      manifest.json            what made the cache (`FeatureCacheManifest`)
      points.npy               (N, 2) float64 (lon, lat) of every tile
      features-00000.npy       (n, V, D) features of tiles 0 .. n-1
      features-00001.npy       tiles n .. 2n-1, and so on
      ...

Shard ``k`` holds the tiles ``k * shard_size`` to ``(k + 1) * shard_size - 1``
(the last one may be shorter), in the row order of ``index.csv``, with every
view of each tile: ``features[i, v]`` is view ``v`` of tile ``k * shard_size +
i``. View 0 is the evaluation view (centre crop); views 1 .. V-1 are training
views (`satclip_tg.transforms.seeded_views`). A tile that could
not be read (with ``skip_unreadable``) has NaN features in every view.

Every file is a plain NumPy ``.npy`` array (memory-mappable with
``numpy.load(..., mmap_mode='r')``) written under a temporary name and
renamed, so a file either is whole or does not exist.
"""

import dataclasses
import hashlib
import json
import os
import pathlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..atomic import atomic_output
from ..errors import FeatureCacheError
from ..renamed_arguments import task_hparam

__all__ = [
    'FORMAT_VERSION',
    'MANIFEST_NAME',
    'POINTS_NAME',
    'FeatureCacheError',
    'FeatureCacheManifest',
    'file_sha256',
    'finished_shards',
    'shard_name',
]

#: Name of the manifest in a cache folder.
MANIFEST_NAME = 'manifest.json'
#: Name of the coordinates file in a cache folder.
POINTS_NAME = 'points.npy'
#: Version of the layout; a cache of another version is refused.
FORMAT_VERSION = 1
#: Value of the manifest's ``format`` entry.
FORMAT_NAME = 'satclip-tg feature cache'
#: dtypes the features may be stored in.
FEATURE_DTYPES = ('float16', 'float32')
#: Manifest entries that must equal the training task's hyperparameters.
MODEL_KEYS = ('backbone', 'backbone_weights', 'backbone_args', 'in_channels')
#: The task's name of each of those (its arguments took TorchGeo's names; the
#: manifest keeps its own, so that caches written before stay valid).
TASK_KEYS = {
    'backbone': 'model',
    'backbone_weights': 'weights',
    'backbone_args': 'model_args',
    'in_channels': 'in_channels',
}
#: The entry that must equal the digest of the training task's backbone.
DIGEST_KEY = 'backbone_sha256'


def shard_name(shard: int) -> str:
    """File name of shard ``shard``.

    Args:
        shard: Shard number.

    Returns:
        ``features-<shard, 5 digits>.npy``.
    """
    return f'features-{shard:05d}.npy'


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes.

    Args:
        path: The file.

    Returns:
        The hex digest.
    """
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FeatureCacheManifest:
    """What made a feature cache; written to ``manifest.json``.

    Attributes:
        backbone: Registered image backbone name.
        backbone_weights: Its weights (None, a TorchGeo weights name or a path).
        backbone_args: Its further options.
        in_channels: Bands the backbone takes.
        backbone_sha256: Digest of the backbone's frozen weights
            (`satclip_tg.image.backbones.backbone_digest`).
        feature_dim: Width D of the stored features.
        views: Views per tile, V (view 0 the evaluation view).
        view_seed: Seed of the training views.
        dtype: ``'float16'`` or ``'float32'``.
        tiles: Number of tiles N (rows of ``index.csv``).
        shard_size: Tiles per shard.
        index_sha256: SHA-256 of the data set's ``index.csv``.
        data: The data settings the views were rendered with (root, crop
            size, scale, B10 insertion, flips, blur, image shape and dtype,
            and the per-band ``mean`` and ``std`` when they are set).
        satclip_tg_version: Version of satclip-tg that wrote the cache.
        format_version: Layout version.
    """

    backbone: str
    backbone_weights: str | None
    backbone_args: dict[str, Any]
    in_channels: int
    backbone_sha256: str
    feature_dim: int
    views: int
    view_seed: int
    dtype: str
    tiles: int
    shard_size: int
    index_sha256: str
    data: dict[str, Any]
    satclip_tg_version: str
    format_version: int = FORMAT_VERSION
    created: str = field(default='', compare=False)

    @property
    def shards(self) -> int:
        """Number of shards."""
        return -(-self.tiles // self.shard_size)

    def shard_tiles(self, shard: int) -> range:
        """The tiles shard ``shard`` holds.

        Args:
            shard: Shard number.

        Returns:
            Their indices.
        """
        start = shard * self.shard_size
        return range(start, min(start + self.shard_size, self.tiles))

    def shard_shape(self, shard: int) -> tuple[int, int, int]:
        """Array shape of shard ``shard``.

        Args:
            shard: Shard number.

        Returns:
            ``(tiles in the shard, views, feature_dim)``.
        """
        return len(self.shard_tiles(shard)), self.views, self.feature_dim

    @property
    def feature_bytes(self) -> int:
        """Size of all shards in bytes."""
        itemsize = np.dtype(self.dtype).itemsize
        return self.tiles * self.views * self.feature_dim * itemsize

    def to_json(self) -> dict[str, Any]:
        """The manifest as a JSON-ready dict.

        Returns:
            The entries, with ``format`` and ``shards`` added for readers.
        """
        return {
            'format': FORMAT_NAME,
            **dataclasses.asdict(self),
            'shards': self.shards,
            'feature_bytes': self.feature_bytes,
        }

    def write(self, directory: str | os.PathLike[str]) -> None:
        """Write ``manifest.json`` atomically into ``directory``.

        Args:
            directory: The cache folder.
        """
        path = pathlib.Path(directory) / MANIFEST_NAME
        with atomic_output(path, overwrite=True) as temporary:
            temporary.write_text(json.dumps(self.to_json(), indent=2) + '\n')

    @classmethod
    def read(cls, directory: str | os.PathLike[str]) -> 'FeatureCacheManifest':
        """Read the manifest of a cache folder.

        Args:
            directory: The cache folder.

        Returns:
            The manifest.

        Raises:
            FeatureCacheError: If it is missing, unreadable or of another
                format or version.
        """
        path = pathlib.Path(directory) / MANIFEST_NAME
        if not path.is_file():
            raise FeatureCacheError(
                f'{directory} is not a feature cache: it has no {MANIFEST_NAME}. '
                f'Make one with: satclip-tg cache-features --config CONFIG.yaml '
                f'--output {directory} --views V'
            )
        try:
            entries = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise FeatureCacheError(f'cannot read {path}: {error}') from None
        if not isinstance(entries, dict) or entries.get('format') != FORMAT_NAME:
            raise FeatureCacheError(
                f'{path} is not a satclip-tg feature cache manifest'
            )
        version = entries.get('format_version')
        if version != FORMAT_VERSION:
            raise FeatureCacheError(
                f'{path} has layout version {version}; this satclip-tg reads '
                f'version {FORMAT_VERSION}: rebuild the cache with cache-features'
            )
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in entries.items() if k in names})
        except TypeError as error:
            raise FeatureCacheError(f'{path} lacks entries: {error}') from None

    def differences(self, other: 'FeatureCacheManifest') -> list[str]:
        """Entries that differ between two manifests (``created`` aside).

        Args:
            other: The other manifest.

        Returns:
            ``'name: this != other'`` for each differing entry.
        """
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        return [
            f'{name}: {mine[name]!r} != {theirs[name]!r}'
            for name in mine
            if name != 'created' and mine[name] != theirs[name]
        ]

    def model_differences(
        self, hparams: dict[str, Any], backbone_sha256: str | None = None
    ) -> list[str]:
        """Backbone settings in which a training task differs from the cache.

        Args:
            hparams: The task's hyperparameters (``model``, ``weights``,
                ``model_args``, ``in_channels``; or the older names
                ``backbone``, ``backbone_weights``, ``backbone_args``).
            backbone_sha256: Digest of the task's backbone, if known.

        Returns:
            ``'name: cache X, task Y'`` for each differing setting.
        """
        cache = dataclasses.asdict(self)
        found = []
        if backbone_sha256 is not None and backbone_sha256 != self.backbone_sha256:
            found.append(
                f'{DIGEST_KEY}: the backbone weights differ (cache '
                f'{self.backbone_sha256[:12]}..., task {backbone_sha256[:12]}...; '
                f'a randomly initialised backbone needs the same seed_everything)'
            )
        for key in MODEL_KEYS:
            name = TASK_KEYS[key]
            expected, actual = cache[key], task_hparam(hparams, name)
            if key == 'backbone_args':
                actual = dict(actual or {})
            if _jsonable(expected) != _jsonable(actual):
                found.append(f'{name}: cache {expected!r}, task {actual!r}')
        return found


def _jsonable(value: Any) -> Any:
    # Compare as the manifest stores it (tuples become lists in JSON).
    return json.loads(json.dumps(value, default=str))


def finished_shards(
    directory: str | os.PathLike[str], manifest: FeatureCacheManifest
) -> list[int]:
    """Shards of a cache that are on disk whole, with the expected shape and dtype.

    Args:
        directory: The cache folder.
        manifest: Its manifest.

    Returns:
        Their numbers, ascending.
    """
    done = []
    for shard in range(manifest.shards):
        path = pathlib.Path(directory) / shard_name(shard)
        try:
            array = np.load(path, mmap_mode='r')
        except (OSError, ValueError):
            continue
        if array.shape == manifest.shard_shape(shard) and array.dtype == np.dtype(
            manifest.dtype
        ):
            done.append(shard)
    return done
