"""Registration of the built-in downstream data sets.

A built-in plugin module, listed in
`satclip_tg.plugins.builtins.BUILTIN_PLUGIN_MODULES`: it registers the
downstream data sets of this package through the public hook (which keeps its
historical name, ``satclip_tg_downstream_tasks``), as any plugin would.
"""

from collections.abc import Callable, Mapping
from typing import Any

from ...plugins.hookspecs import hookimpl

__all__ = ['satclip_tg_downstream_tasks']


@hookimpl
def satclip_tg_downstream_tasks() -> Mapping[str, Callable[..., Any]]:
    """Provide the built-in downstream data sets (real data from registry packages).

    Returns:
        The built-in downstream data sets by name.
    """
    # Imported here so that building the registry stays cheap.
    from .api import BUILTIN_DOWNSTREAM_DATASETS

    return BUILTIN_DOWNSTREAM_DATASETS
