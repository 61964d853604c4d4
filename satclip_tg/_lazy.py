"""Public names imported on first access (PEP 562), for light packages.

``satclip-tg --help`` and the plugin registry import some packages only for
one small module; their ``__init__`` must then not load torch, timm, TorchGeo
or rasterio. Such a package lists its public names and the modules that hold
them, and takes ``__getattr__`` and ``__dir__`` from `lazy_attributes`.
"""

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ['lazy_attributes']


def lazy_attributes(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` that import ``names`` lazily.

    A name is imported from its module on first access and then stored in the
    package, so later look-ups are plain attribute reads.

    Args:
        package: The package's ``__name__``.
        names: Public name -> the module that defines it.

    Returns:
        ``(__getattr__, __dir__)`` for the package.
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f'module {package!r} has no attribute {name!r}')
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names})

    return __getattr__, __dir__
