"""Plugin discovery and the component registry.

The registry is built once per process, on first use: the built-in plugin is
registered, then every entry point of the ``satclip_tg`` group is imported. A
plugin that fails to import, declares an incompatible hook contract or whose
hook raises is skipped with a warning naming its distribution, so one broken
plugin never takes the rest down. Two providers of the same component name
are an error that names both.
"""

import difflib
import functools
import importlib.metadata
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pluggy

from . import hookspecs

__all__ = [
    'COMPONENT_KINDS',
    'Component',
    'ComponentConflictError',
    'ComponentKind',
    'PluginWarning',
    'Registry',
    'UnknownComponentError',
    'get_registry',
    'reset_registry',
]

ComponentKind = Literal[
    'positional_encoding', 'network', 'image_backbone', 'downstream_task'
]

#: Each component kind, with the hook that provides it and a readable label.
COMPONENT_KINDS: dict[ComponentKind, tuple[str, str]] = {
    'positional_encoding': ('satclip_tg_positional_encodings', 'positional encoding'),
    'network': ('satclip_tg_networks', 'location network'),
    'image_backbone': ('satclip_tg_image_backbones', 'image backbone'),
    'downstream_task': ('satclip_tg_downstream_tasks', 'downstream task'),
}

BUILTIN_PLUGIN_NAME = 'satclip_tg.builtins'


class PluginWarning(UserWarning):
    """A plugin could not be loaded or one of its hooks failed."""


class UnknownComponentError(KeyError, ValueError):
    """No registered component has the requested name."""

    def __str__(self) -> str:
        return str(self.args[0])


class ComponentConflictError(RuntimeError):
    """Two plugins register a component of the same kind under the same name."""


@dataclass(frozen=True)
class Component:
    """A registered component.

    Attributes:
        kind: What the component is, e.g. ``'positional_encoding'``.
        name: The name it is looked up by, in Python and in YAML.
        factory: The callable that builds it.
        plugin: The name of the plugin that registered it.
        distribution: The installed distribution providing the plugin, or
            ``None`` for plugins registered at run time.
        version: The version of that distribution, or ``None``.
    """

    kind: ComponentKind
    name: str
    factory: Callable[..., Any]
    plugin: str
    distribution: str | None = None
    version: str | None = None

    @property
    def provider(self) -> str:
        """Readable provider, e.g. ``'satclip-tg 0.1.0 (satclip_tg.builtins)'``."""
        if self.distribution is None:
            return self.plugin
        return f'{self.distribution} {self.version} ({self.plugin})'


class Registry:
    """All components provided by the registered plugins, by kind and name."""

    def __init__(self, load_entry_points: bool = True) -> None:
        """Initialize a registry with the built-ins and, optionally, entry points.

        Args:
            load_entry_points: Whether to import the plugins installed under
                the ``satclip_tg`` entry-point group.
        """
        self.plugin_manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.plugin_manager.add_hookspecs(hookspecs)
        self._distributions: dict[str, tuple[str, str]] = {}
        self._components: dict[ComponentKind, dict[str, Component]] = {}

        from . import builtins

        self.register(builtins, name=BUILTIN_PLUGIN_NAME)
        self._distributions[BUILTIN_PLUGIN_NAME] = _own_distribution()
        if load_entry_points:
            self._load_entry_points()

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object at run time (useful in notebooks and tests).

        Args:
            plugin: A module or object with ``@hookimpl`` functions.
            name: The plugin's name; defaults to pluggy's choice.

        Raises:
            ValueError: If the plugin declares an incompatible hook contract
                version, or is already registered.
        """
        _check_api_version(plugin, name or repr(plugin))
        self.plugin_manager.register(plugin, name=name)
        self._components = {}

    def unregister(self, name: str) -> None:
        """Remove a plugin registered under ``name``.

        Args:
            name: The plugin's name.
        """
        self.plugin_manager.unregister(name=name)
        self._distributions.pop(name, None)
        self._components = {}

    def _load_entry_points(self) -> None:
        entry_points = importlib.metadata.entry_points(group=hookspecs.PROJECT_NAME)
        for entry_point in entry_points:
            dist = entry_point.dist
            dist_info = (
                (dist.metadata['Name'], dist.version)
                if dist is not None
                else ('<unknown distribution>', '?')
            )
            if self.plugin_manager.has_plugin(entry_point.name):
                continue
            try:
                plugin = entry_point.load()
                self.register(plugin, name=entry_point.name)
            except Exception as error:
                warnings.warn(
                    f'satclip-tg plugin {entry_point.name!r} from distribution '
                    f'{dist_info[0]} {dist_info[1]} could not be loaded and is '
                    f'skipped: {type(error).__name__}: {error}',
                    PluginWarning,
                    stacklevel=2,
                )
                continue
            self._distributions[entry_point.name] = dist_info

    def _collect(self, kind: ComponentKind) -> dict[str, Component]:
        # Each kind is collected on its own, so a clash among, say, networks
        # does not stop the positional encodings from being looked up.
        if kind in self._components:
            return self._components[kind]
        hook_name, label = COMPONENT_KINDS[kind]
        table: dict[str, Component] = {}
        hook = getattr(self.plugin_manager.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):
            plugin_name = impl.plugin_name
            dist, version = self._distributions.get(plugin_name, (None, None))
            try:
                provided = impl.function()
                if not isinstance(provided, Mapping):
                    raise TypeError(
                        f'{hook_name} must return a mapping of name to '
                        f'factory, got {type(provided).__name__}'
                    )
            except Exception as error:
                where = plugin_name if dist is None else f'{dist} {version}'
                warnings.warn(
                    f'satclip-tg plugin {plugin_name!r} ({where}) failed in '
                    f'{hook_name} and its {label}s are skipped: '
                    f'{type(error).__name__}: {error}',
                    PluginWarning,
                    stacklevel=3,
                )
                continue
            for name, factory in provided.items():
                component = Component(kind, name, factory, plugin_name, dist, version)
                if name in table:
                    raise ComponentConflictError(
                        f'two plugins register a {label} named {name!r}: '
                        f'{table[name].provider} and {component.provider}; '
                        f'uninstall or disable one of them'
                    )
                table[name] = component
        self._components[kind] = dict(sorted(table.items()))
        return self._components[kind]

    def names(self, kind: ComponentKind) -> list[str]:
        """Sorted names of the registered components of one kind.

        Args:
            kind: The component kind.

        Returns:
            The names, sorted.
        """
        return list(self._collect(kind))

    def components(self, kind: ComponentKind | None = None) -> list[Component]:
        """Registered components, optionally of one kind only.

        Args:
            kind: The component kind, or ``None`` for all kinds.

        Returns:
            The components, sorted by kind, then name.
        """
        kinds = [kind] if kind is not None else list(COMPONENT_KINDS)
        return [component for k in kinds for component in self._collect(k).values()]

    def get(self, kind: ComponentKind, name: str) -> Component:
        """Look a component up by kind and name.

        Args:
            kind: The component kind.
            name: The component name.

        Returns:
            The component.

        Raises:
            UnknownComponentError: If no component of that kind has that name;
                the message lists the available names and close matches.
        """
        table = self._collect(kind)
        if name in table:
            return table[name]
        label = COMPONENT_KINDS[kind][1]
        available = ', '.join(table) or '(none)'
        close = difflib.get_close_matches(name, list(table), n=3)
        suggestion = f' Did you mean {" or ".join(map(repr, close))}?' if close else ''
        raise UnknownComponentError(
            f'unknown {label} {name!r}.{suggestion} Available: {available}. '
            f'Plugins add more: see `satclip-tg plugins`.'
        )


def _check_api_version(plugin: object, name: str) -> None:
    declared = getattr(plugin, 'SATCLIP_TG_HOOK_API', hookspecs.HOOK_API_VERSION)
    if declared != hookspecs.HOOK_API_VERSION:
        raise ValueError(
            f'plugin {name} was written for satclip-tg hook contract version '
            f'{declared}, but this satclip-tg implements version '
            f'{hookspecs.HOOK_API_VERSION}; upgrade the plugin or satclip-tg'
        )


def _own_distribution() -> tuple[str, str]:
    try:
        return 'satclip-tg', importlib.metadata.version('satclip-tg')
    except importlib.metadata.PackageNotFoundError:
        return 'satclip-tg', 'unknown'


@functools.cache
def get_registry() -> Registry:
    """The process-wide registry, built on first use.

    Returns:
        The registry with the built-ins and all installed plugins.
    """
    return Registry()


def reset_registry() -> None:
    """Forget the process-wide registry so that the next use rebuilds it."""
    get_registry.cache_clear()
