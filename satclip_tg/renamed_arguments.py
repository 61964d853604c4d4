"""The pretraining task's argument names before it took TorchGeo's.

TorchGeo's tasks call the image network ``model`` (a timm name), its initial
weights ``weights`` and the gathering of negatives across processes
``gather_distributed``; `satclip_tg.tasks.SatCLIPPretraining` takes those
names. Its older names (``backbone``, ``backbone_weights``, ``backbone_args``,
``gather_negatives``) still work for one release with a `FutureWarning`, and
checkpoints saved with them still load. This module holds the mapping, the
resolution of an old/new pair, and the look-up of a hyperparameter in the
``hyper_parameters`` of a checkpoint of either age.

It imports nothing from the rest of satclip-tg, so that the feature cache, the
checkpoint loaders and the task can all use it without import cycles.
"""

import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

__all__ = [
    'NEW_NAMES',
    'OLD_NAMES',
    'REMOVED_IN',
    'quiet_renamed_arguments',
    'resolve_renamed',
    'task_hparam',
]

#: Deprecated argument name of the pretraining task -> its current name.
NEW_NAMES: Mapping[str, str] = MappingProxyType(
    {
        'backbone': 'model',
        'backbone_weights': 'weights',
        'backbone_args': 'model_args',
        'gather_negatives': 'gather_distributed',
    }
)
#: Current argument name -> its deprecated name.
OLD_NAMES: Mapping[str, str] = MappingProxyType(
    {new: old for old, new in NEW_NAMES.items()}
)
#: The release in which the deprecated names stop being accepted.
REMOVED_IN = '0.2'

_WARNING = (
    '{old} is deprecated and will be removed in satclip-tg {removed}: use '
    '{new} (model.init_args.{new} in a config). A checkpoint saved before the '
    'rename stores the old name; it loads all the same'
)


def resolve_renamed(
    new: str, value: Any, old_value: Any, default: Any, *, stacklevel: int = 3
) -> Any:
    """The value of a renamed argument, given by its new or its old name.

    The old name counts as given when it is not None (its default). The new
    name counts as given when it differs from its default: giving the old
    name together with a new value that differs from it is refused.

    Args:
        new: The current name, a value of `NEW_NAMES`.
        value: The value passed under the current name.
        old_value: The value passed under the deprecated name (None: not given).
        default: The default of the current name.
        stacklevel: Where the warning points (3: the caller of the task's
            ``__init__``).

    Returns:
        ``old_value`` when the old name was given, else ``value``.

    Raises:
        ValueError: If both names are given with different values.
    """
    if old_value is None:
        return value
    old = OLD_NAMES[new]
    if value != default and value != old_value:
        raise ValueError(
            f'{old}={old_value!r} and {new}={value!r} were both given: {old} is '
            f'the deprecated name of {new}; give {new} only'
        )
    warnings.warn(
        _WARNING.format(old=old, new=new, removed=REMOVED_IN),
        FutureWarning,
        stacklevel=stacklevel,
    )
    return old_value


def task_hparam(hparams: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """A pretraining task's hyperparameter by its current name, in any checkpoint.

    Args:
        hparams: ``hyper_parameters`` of a checkpoint, or a task's ``hparams``.
        name: The current name, e.g. ``'model'`` or ``'weights'``.
        default: What to return when neither name is there.

    Returns:
        The value under the current name, else under the deprecated one
        (checkpoints saved before the rename), else ``default``.
    """
    if name in hparams:
        return hparams[name]
    old = OLD_NAMES.get(name)
    if old is not None and old in hparams:
        return hparams[old]
    return default


@contextmanager
def quiet_renamed_arguments() -> Iterator[None]:
    """Silence the rename warnings while loading a checkpoint saved before it.

    Yields:
        Nothing; the warnings are filtered inside the block.
    """
    with warnings.catch_warnings():
        for old in NEW_NAMES:
            warnings.filterwarnings(
                'ignore',
                message=re.escape(f'{old} is deprecated'),
                category=FutureWarning,
            )
        yield
