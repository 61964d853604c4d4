"""The hook implementations of the ``smp`` plugin (the entry-point target).

segmentation-models-pytorch is imported only when a backbone is built, so
listing the components (``satclip-tg plugins``) stays fast.
"""

from collections.abc import Callable, Mapping

from torch import nn

from satclip_tg.plugins import hookimpl

from .backbone import CURATED_ENCODERS, SMPImageEncoder, smp_backbone

#: The satclip-tg hook contract version this plugin is written against.
SATCLIP_TG_HOOK_API = 1

#: Prefix of the curated backbone names: ``smp:resnet34`` is smp's ``resnet34``.
PREFIX = 'smp:'


@hookimpl
def satclip_tg_image_backbones() -> Mapping[str, Callable[..., nn.Module]]:
    """Provide ``smp:<encoder>`` for the curated encoders, and the generic ``smp``.

    Returns:
        The plugin's image backbones by name.
    """
    backbones: dict[str, Callable[..., nn.Module]] = {
        f'{PREFIX}{name}': smp_backbone(name) for name in CURATED_ENCODERS
    }
    backbones['smp'] = SMPImageEncoder
    return backbones
