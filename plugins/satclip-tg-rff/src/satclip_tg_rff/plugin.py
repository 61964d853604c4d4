"""The hook implementations of the ``rff`` plugin (the entry-point target)."""

from collections.abc import Callable, Mapping

from torch import nn

from satclip_tg.plugins import hookimpl

from .encoding import RandomFourierFeatures

#: The satclip-tg hook contract version this plugin is written against.
SATCLIP_TG_HOOK_API = 1


@hookimpl
def satclip_tg_positional_encodings() -> Mapping[str, Callable[..., nn.Module]]:
    """Provide the ``rff`` positional encoding.

    Returns:
        The plugin's encodings by name.
    """
    return {'rff': RandomFourierFeatures}
