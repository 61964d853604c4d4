"""Plugin system: the hook contract and the component registry."""

from .hookspecs import HOOK_API_VERSION, PROJECT_NAME, hookimpl, hookspec
from .manager import (
    COMPONENT_KINDS,
    Component,
    ComponentConflictError,
    ComponentKind,
    PluginWarning,
    Registry,
    UnknownComponentError,
    disabled_plugin_names,
    get_registry,
    reset_registry,
)

__all__ = [
    'COMPONENT_KINDS',
    'HOOK_API_VERSION',
    'PROJECT_NAME',
    'Component',
    'ComponentConflictError',
    'ComponentKind',
    'PluginWarning',
    'Registry',
    'UnknownComponentError',
    'disabled_plugin_names',
    'get_registry',
    'hookimpl',
    'hookspec',
    'reset_registry',
]
