"""Forwarding of deprecated module paths to their new homes.

A moved module leaves a small module at its old path whose module-level
``__getattr__`` (PEP 562) warns with a `FutureWarning` naming the new path,
then returns the object from there: the same object, so ``isinstance`` checks
and subclasses (e.g. of ``satclip_tg.benchmark.tasks.PackagedTask``) keep
working. Used by ``satclip_tg.benchmark`` and ``satclip_tg.demo.bluemarble``.
"""

import importlib
import sys
import warnings
from collections.abc import Callable, Collection
from typing import Any

__all__ = ['forwarder']


def forwarder(
    old: str, new: str, submodules: Collection[str] = ()
) -> Callable[[str], Any]:
    """A module ``__getattr__`` forwarding the names of ``old`` to ``new``.

    A forwarded name is then stored in ``old``, so that it warns once, and
    not twice for one ``from old import name`` (the import system looks the
    name up twice).

    Args:
        old: The deprecated module path.
        new: The module the names now live in.
        submodules: Deprecated submodules of ``old`` (a package), imported
            as they are instead of being looked up in ``new``.

    Returns:
        The ``__getattr__`` function for the old module.
    """

    def __getattr__(name: str) -> Any:
        # Dunder look-ups (``__path__``, ``__wrapped__``...) are the import
        # system's and inspect's own questions, not a user's import.
        if name.startswith('__'):
            raise AttributeError(f'module {old!r} has no attribute {name!r}')
        if name in submodules:
            return importlib.import_module(f'{old}.{name}')
        module = importlib.import_module(new)
        try:
            value = getattr(module, name)
        except AttributeError:
            raise AttributeError(
                f'module {old!r} has no attribute {name!r} (it moved to {new!r})'
            ) from None
        warnings.warn(
            f'{old}.{name} is deprecated: import it from {new} instead',
            FutureWarning,
            stacklevel=2,
        )
        setattr(sys.modules[old], name, value)
        return value

    return __getattr__
