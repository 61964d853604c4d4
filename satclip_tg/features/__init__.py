"""Frozen-backbone feature cache: manifest, writer and reader.

``satclip-tg cache-features`` (`satclip_tg.features.writer.cache_features`)
runs a training config's frozen backbone once over every tile for V views and
stores the pooled features; `satclip_tg.datamodules.CachedFeatureDataModule`
trains from them. See ``docs/pretraining.md``.
"""

from .manifest import FeatureCacheError, FeatureCacheManifest
from .reader import FeatureCache

__all__ = ['FeatureCache', 'FeatureCacheError', 'FeatureCacheManifest']
