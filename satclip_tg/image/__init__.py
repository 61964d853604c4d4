"""The image side of SatCLIP: backbones with a trainable projection."""

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers
    from .backbones import ImageEncoder, load_backbone_weights, timm_backbone

__all__ = ['ImageEncoder', 'load_backbone_weights', 'timm_backbone']

# Imported on first access: the registry imports `satclip_tg.image.hooks` on
# every look-up, and timm should load only when an image backbone is built.
__getattr__, __dir__ = lazy_attributes(
    __name__, dict.fromkeys(__all__, 'satclip_tg.image.backbones')
)
