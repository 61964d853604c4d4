"""The hook implementation that registers the ``koppen`` downstream task."""

from collections.abc import Callable, Mapping
from typing import Any

from satclip_tg.plugins import HOOK_API_VERSION, hookimpl

from .task import KoppenTask

SATCLIP_TG_HOOK_API = HOOK_API_VERSION


@hookimpl
def satclip_tg_downstream_tasks() -> Mapping[str, Callable[..., Any]]:
    """Provide the ``koppen`` task.

    Returns:
        The task factory by name.
    """
    return {'koppen': KoppenTask}
