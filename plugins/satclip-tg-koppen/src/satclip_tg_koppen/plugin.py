"""The hook implementation that registers the ``koppen`` downstream task."""

from collections.abc import Callable, Mapping
from typing import Any

from satclip_tg.plugins import hookimpl

from .task import KoppenTask

# The hook API this plugin was written against, as a literal: importing
# HOOK_API_VERSION would claim whatever version is installed (docs/plugins.md).
SATCLIP_TG_HOOK_API = 1


@hookimpl
def satclip_tg_downstream_tasks() -> Mapping[str, Callable[..., Any]]:
    """Provide the ``koppen`` task.

    Returns:
        The task factory by name.
    """
    return {'koppen': KoppenTask}
