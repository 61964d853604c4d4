"""Registration of the built-in positional encodings.

A built-in plugin module, listed in
`satclip_tg.plugins.builtins.BUILTIN_PLUGIN_MODULES`: it registers the
encodings of this package through the public hook, as any plugin would.
"""

from collections.abc import Callable, Mapping

from torch import nn

from ...plugins.hookspecs import hookimpl

__all__ = ['satclip_tg_positional_encodings']


@hookimpl
def satclip_tg_positional_encodings() -> Mapping[str, Callable[..., nn.Module]]:
    """Provide the built-in positional encodings.

    Returns:
        The built-in encodings by name.
    """
    from . import simple, sinusoidal, sphere2vec
    from .spherical_harmonics import SphericalHarmonics

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
