"""Read a finished feature cache."""

import os
import pathlib

import numpy as np
import numpy.typing as npt

from ..resources import HostMemoryError, available_memory_bytes, format_bytes
from .manifest import (
    POINTS_NAME,
    FeatureCacheError,
    FeatureCacheManifest,
    finished_shards,
    shard_name,
)

__all__ = ['FeatureCache']


class FeatureCache:
    """A finished feature cache folder, opened for reading.

    Opening checks that the manifest is readable and that every shard and the
    coordinates are on disk whole; the arrays are read only by `features`
    and `points`.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        """Open a cache.

        Args:
            directory: The folder ``satclip-tg cache-features --output`` wrote.

        Raises:
            FeatureCacheError: If it is not a cache, or is incomplete.
        """
        self.directory = pathlib.Path(directory)
        self.manifest = FeatureCacheManifest.read(self.directory)
        done = set(finished_shards(self.directory, self.manifest))
        missing = [s for s in range(self.manifest.shards) if s not in done]
        if missing:
            raise FeatureCacheError(
                f'the feature cache {self.directory} is incomplete: {len(missing)} '
                f'of {self.manifest.shards} shards are missing (first: '
                f'{shard_name(missing[0])}). Run the same satclip-tg cache-features '
                f'command again: it resumes and writes only the missing shards'
            )
        try:
            points = np.load(self.directory / POINTS_NAME, mmap_mode='r')
        except (OSError, ValueError) as error:
            raise FeatureCacheError(
                f'cannot read {self.directory / POINTS_NAME}: {error}; run '
                f'cache-features again'
            ) from None
        if points.shape != (self.manifest.tiles, 2):
            raise FeatureCacheError(
                f'{self.directory / POINTS_NAME} has shape {points.shape}, but the '
                f'manifest lists {self.manifest.tiles} tiles; rebuild the cache'
            )

    def points(self) -> npt.NDArray[np.float64]:
        """The (lon, lat) of every tile.

        Returns:
            ``(N, 2)`` float64 degrees, in the row order of ``index.csv``.
        """
        points: npt.NDArray[np.float64] = np.load(self.directory / POINTS_NAME)
        return points

    def features(self) -> npt.NDArray[np.floating]:
        """Every view's features of every tile, in host memory.

        Returns:
            ``(N, V, D)`` in the cache's dtype; NaN rows for tiles that were
            unreadable when the cache was made.

        Raises:
            HostMemoryError: If the cache is larger than the available memory.
        """
        manifest = self.manifest
        available = available_memory_bytes()
        if available is not None and manifest.feature_bytes > available:
            raise HostMemoryError(
                f'the feature cache {self.directory} holds '
                f'{format_bytes(manifest.feature_bytes)}, more than the '
                f'{format_bytes(available)} of available memory; cache fewer '
                f'--views, or --dtype float16'
            )
        out = np.empty(
            (manifest.tiles, manifest.views, manifest.feature_dim),
            dtype=manifest.dtype,
        )
        for shard in range(manifest.shards):
            rows = manifest.shard_tiles(shard)
            path = self.directory / shard_name(shard)
            out[rows.start : rows.stop] = np.load(path, mmap_mode='r')
        return out
