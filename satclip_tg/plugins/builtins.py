"""The built-in components, registered through the public hooks like any plugin."""

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from .hookspecs import HOOK_API_VERSION, hookimpl

SATCLIP_TG_HOOK_API = HOOK_API_VERSION


@hookimpl
def satclip_tg_positional_encodings() -> Mapping[str, Callable[..., nn.Module]]:
    """Provide the built-in positional encodings.

    Returns:
        The built-in encodings by name.
    """
    from ..location.encodings import simple, sinusoidal, sphere2vec
    from ..location.encodings.spherical_harmonics import SphericalHarmonics

    return {
        'direct': simple.Direct,
        'cartesian3d': simple.Cartesian3D,
        'wrap': sinusoidal.Wrap,
        'grid': sinusoidal.Space2VecGrid,
        'theory': sinusoidal.Space2VecTheory,
        'spherec': sphere2vec.SphereC,
        'spherecplus': sphere2vec.SphereCPlus,
        'spherem': sphere2vec.SphereM,
        'spheremplus': sphere2vec.SphereMPlus,
        'sphericalharmonics': SphericalHarmonics,
    }


@hookimpl
def satclip_tg_networks() -> Mapping[str, Callable[..., nn.Module]]:
    """Provide the built-in location networks.

    Returns:
        The built-in networks by name.
    """
    from ..location.networks import FCNet, LinearNetwork, MLPNetwork, SirenNet

    return {
        'siren': SirenNet,
        'fcnet': FCNet,
        'mlp': MLPNetwork,
        'linear': LinearNetwork,
    }


@hookimpl
def satclip_tg_image_backbones() -> Mapping[str, Callable[..., nn.Module]]:
    """Provide the SSL4EO-S12 architectures of the released SatCLIP models.

    Returns:
        The built-in image backbones by name.
    """
    from ..image.backbones import timm_backbone
    from ..image.mosaiks import MosaiksImageEncoder

    return {
        name: timm_backbone(name)
        for name in ('resnet18', 'resnet50', 'vit_small_patch16_224')
    } | {'mosaiks': MosaiksImageEncoder}


@hookimpl
def satclip_tg_downstream_tasks() -> Mapping[str, Callable[..., Any]]:
    """Provide the built-in downstream tasks (real data from registry packages).

    Returns:
        The built-in tasks by name.
    """
    from ..benchmark.tasks import BUILTIN_TASKS

    return BUILTIN_TASKS
