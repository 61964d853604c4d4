"""The image side of SatCLIP: backbones with a trainable projection."""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers
    from .backbones import ImageEncoder, load_backbone_weights, timm_backbone

__all__ = ['ImageEncoder', 'load_backbone_weights', 'timm_backbone']


def __getattr__(name: str) -> Any:
    """Import a public name on first access.

    Imported lazily because the registry imports `satclip_tg.image.hooks` on
    every look-up, and timm should load only when an image backbone is built.

    Args:
        name: The attribute.

    Returns:
        Its value.

    Raises:
        AttributeError: If the package has no such attribute.
    """
    if name not in __all__:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module('satclip_tg.image.backbones'), name)
    globals()[name] = value
    return value
