"""Any timm architecture as an image backbone, without registering it.

The registry lists the named built-ins and plugins only: registering each of
timm's 1000+ architectures would bury them in ``satclip-tg plugins``. Instead,
a name that no built-in or plugin registers but that timm knows (a name in
``timm.list_models()``, optionally with a pretrained tag such as
``resnet50.a1_in1k``) is built on demand through the same `ImageEncoder` path
as the built-ins: timm's ``in_chans`` adapts the first layer to the band
count, and weights come from a TorchGeo weights name or a checkpoint file,
never from a download.
"""

import functools
from collections.abc import Callable
from typing import Any

__all__ = [
    'TIMM_HINT',
    'TIMM_PROVIDER',
    'is_timm_model',
    'timm_factory',
    'timm_model_names',
    'timm_version',
]

#: Plugin name of the components built for unregistered timm names.
TIMM_PROVIDER = 'satclip_tg.timm'
#: What error and help texts say about the names accepted beyond the registry.
TIMM_HINT = 'or any timm model name (timm.list_models())'


def is_timm_model(name: str) -> bool:
    """Whether timm can build an architecture of this name.

    Args:
        name: A timm model name, e.g. ``'efficientnet_b0'``, optionally with a
            pretrained tag (``'resnet50.a1_in1k'``: the tag selects timm's
            default configuration, never a download).

    Returns:
        True if timm knows the architecture.
    """
    import timm

    return bool(name) and bool(timm.is_model(name))


@functools.cache
def timm_model_names() -> tuple[str, ...]:
    """The architecture names timm knows (without pretrained tags), sorted.

    Returns:
        ``timm.list_models()`` as a tuple, computed once per process.
    """
    import timm

    return tuple(timm.list_models())


def timm_version() -> str:
    """The installed timm version.

    Returns:
        ``timm.__version__``.
    """
    import timm

    return str(timm.__version__)


def timm_factory(name: str) -> Callable[..., Any] | None:
    """A backbone factory for a timm name, as the plugin hook expects.

    Args:
        name: The name looked up.

    Returns:
        `timm_backbone` of the name if timm knows it, else ``None``.
    """
    if not is_timm_model(name):
        return None
    from .backbones import timm_backbone

    factory: Callable[..., Any] = timm_backbone(name)
    return factory
