"""Registration of the built-in image backbones.

A built-in plugin module, listed in
`satclip_tg.plugins.builtins.BUILTIN_PLUGIN_MODULES`: it registers the image
encoders of this package through the public hook, as any plugin would.
"""

from collections.abc import Callable, Mapping

from torch import nn

from ..plugins.hookspecs import hookimpl

__all__ = ['satclip_tg_image_backbones']


@hookimpl
def satclip_tg_image_backbones() -> Mapping[str, Callable[..., nn.Module]]:
    """Provide the SSL4EO-S12 architectures of the released SatCLIP models.

    Returns:
        The built-in image backbones by name.
    """
    # Imported here so that building the registry stays cheap: timm and
    # TorchGeo's models load only when an image backbone is looked up.
    from .backbones import timm_backbone
    from .mosaiks import MosaiksImageEncoder

    return {
        name: timm_backbone(name)
        for name in ('resnet18', 'resnet50', 'vit_small_patch16_224')
    } | {'mosaiks': MosaiksImageEncoder}
