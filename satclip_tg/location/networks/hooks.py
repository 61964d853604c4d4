"""Registration of the built-in location networks.

A built-in plugin module, listed in
`satclip_tg.plugins.builtins.BUILTIN_PLUGIN_MODULES`: it registers the
networks of this package through the public hook, as any plugin would.
"""

from collections.abc import Callable, Mapping

from torch import nn

from ...plugins.hookspecs import hookimpl

__all__ = ['satclip_tg_networks']


@hookimpl
def satclip_tg_networks() -> Mapping[str, Callable[..., nn.Module]]:
    """Provide the built-in location networks.

    Returns:
        The built-in networks by name.
    """
    from . import FCNet, LinearNetwork, MLPNetwork, SirenNet

    return {
        'siren': SirenNet,
        'fcnet': FCNet,
        'mlp': MLPNetwork,
        'linear': LinearNetwork,
    }
