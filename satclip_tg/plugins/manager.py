"""Plugin discovery and the component registry.

The registry is built once per process, on first use: the built-in plugin
modules listed in `satclip_tg.plugins.builtins.BUILTIN_PLUGIN_MODULES` are
imported by name and registered, then every entry point of the ``satclip_tg``
group is imported, except those switched off with the environment variable
``SATCLIP_TG_DISABLE_PLUGINS`` (see `disabled_plugin_names`).
Plugins are contained: a plugin that fails to import (even with
``sys.exit``), declares an incompatible hook contract, has a hook that raises
or returns something other than a mapping of name to factory, or reuses a
taken name, is reported with a `PluginWarning` naming its distribution and
skipped (the whole plugin, the hook, or only the offending entries), so one
broken plugin never takes the rest, or a command, down. Only
``KeyboardInterrupt`` goes through.
"""

import difflib
import functools
import importlib
import importlib.metadata
import os
import re
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pluggy

from ..errors import ComponentConflictError, UnknownComponentError
from . import hookspecs

__all__ = [
    'COMPONENT_KINDS',
    'Component',
    'ComponentConflictError',
    'ComponentKind',
    'PluginWarning',
    'Registry',
    'UnknownComponentError',
    'disabled_plugin_names',
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

#: The plugin name the built-in components report (`Component.plugin`),
#: whichever of the built-in modules registers them.
BUILTIN_PLUGIN_NAME = 'satclip_tg.builtins'

#: Environment variable naming installed plugins to skip, separated by commas.
DISABLE_VARIABLE = 'SATCLIP_TG_DISABLE_PLUGINS'


class PluginWarning(UserWarning):
    """A plugin, one of its hooks or one of its components was skipped."""


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
    """All components provided by the registered plugins, by kind and name.

    When two plugins provide a component of the same kind under the same name,
    one is kept and the other skipped with a `PluginWarning` naming both, in a
    fixed order of precedence that does not depend on the order in which
    plugins load: the built-ins first, then installed plugins by distribution
    name and entry-point name, then plugins registered at run time by name.
    """

    def __init__(
        self,
        load_entry_points: bool = True,
        disabled: Collection[str] | None = None,
    ) -> None:
        """Initialize a registry with the built-ins and, optionally, entry points.

        Args:
            load_entry_points: Whether to import the plugins installed under
                the ``satclip_tg`` entry-point group.
            disabled: Installed plugins not to import, by entry-point or
                distribution name; defaults to those named in the environment
                variable ``SATCLIP_TG_DISABLE_PLUGINS``.
        """
        self.plugin_manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.plugin_manager.add_hookspecs(hookspecs)
        self._distributions: dict[str, tuple[str, str]] = {}
        self._components: dict[ComponentKind, dict[str, Component]] = {}
        self._disable = frozenset(
            _normalize(name)
            for name in (disabled_plugin_names() if disabled is None else disabled)
        )
        #: The installed plugins skipped because they were switched off, as
        #: ``(entry-point name, distribution, version)``.
        self.disabled: list[tuple[str, str, str]] = []

        # The list is read here, not at module level, so that importing the
        # plugin API does not import the built-in components.
        from .builtins import BUILTIN_PLUGIN_MODULES

        self._builtin_names = frozenset(BUILTIN_PLUGIN_MODULES)
        own = _own_distribution()
        for module_name in BUILTIN_PLUGIN_MODULES:
            self.register(importlib.import_module(module_name), name=module_name)
            self._distributions[module_name] = own
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
        # Some pluggy versions record a plugin before they check its hooks, so
        # a failed registration could leave some of them behind; only a
        # registration that got that far is undone (a duplicate is refused
        # before anything changes, and the earlier plugin must stay).
        fresh = not self.plugin_manager.is_registered(plugin) and not (
            name is not None and self.plugin_manager.has_plugin(name)
        )
        try:
            self.plugin_manager.register(plugin, name=name)
        except BaseException:
            if fresh and self.plugin_manager.is_registered(plugin):
                self.plugin_manager.unregister(plugin)
            raise
        finally:
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
        try:
            entry_points = list(
                importlib.metadata.entry_points(group=hookspecs.PROJECT_NAME)
            )
        except Exception as error:
            # Unreadable metadata of one installed distribution must not cost
            # the built-ins.
            warnings.warn(
                f'satclip-tg could not list the installed plugins and loads '
                f'none of them: {_describe_error(error)}',
                PluginWarning,
                stacklevel=2,
            )
            return
        for entry_point in entry_points:
            dist_info = _distribution_of(entry_point)
            source = (
                f'satclip-tg plugin {entry_point.name!r} from distribution '
                f'{dist_info[0]} {dist_info[1]}'
            )
            if self._disable & {
                _normalize(entry_point.name),
                _normalize(dist_info[0]),
            }:
                self.disabled.append((entry_point.name, *dist_info))
                continue
            if self.plugin_manager.has_plugin(entry_point.name):
                taken_by = self._distributions.get(entry_point.name)
                if taken_by != dist_info:
                    owner = ' '.join(taken_by) if taken_by else 'run time'
                    warnings.warn(
                        f'{source} is skipped: a plugin named '
                        f'{entry_point.name!r} is already registered (from '
                        f'{owner}); rename the entry point',
                        PluginWarning,
                        stacklevel=2,
                    )
                continue
            try:
                plugin = entry_point.load()
                self.register(plugin, name=entry_point.name)
            except KeyboardInterrupt:
                raise
            except BaseException as error:
                # SystemExit, GeneratorExit and the like are caught too: a
                # plugin calling sys.exit on import must not end every command.
                warnings.warn(
                    f'{source} could not be loaded and is skipped: '
                    f'{_describe_error(error)}{_not_an_exception(error)}',
                    PluginWarning,
                    stacklevel=2,
                )
                continue
            self._distributions[entry_point.name] = dist_info

    def _precedence(self, plugin_name: str) -> tuple[bool, bool, str, str]:
        # Which of two clashing components is kept must not depend on the
        # order in which entry points happen to be found on sys.path.
        dist, _ = self._distributions.get(plugin_name, (None, None))
        return (
            plugin_name not in self._builtin_names,
            dist is None,
            dist or '',
            plugin_name,
        )

    def _collect(self, kind: ComponentKind) -> dict[str, Component]:
        # Each kind is collected on its own, so a broken network plugin does
        # not stop the positional encodings from being looked up.
        if kind in self._components:
            return self._components[kind]
        hook_name, label = COMPONENT_KINDS[kind]
        table: dict[str, Component] = {}
        hook = getattr(self.plugin_manager.hook, hook_name)
        impls = sorted(
            hook.get_hookimpls(), key=lambda impl: self._precedence(impl.plugin_name)
        )
        for impl in impls:
            plugin_name = impl.plugin_name
            dist, version = self._distributions.get(plugin_name, (None, None))
            where = plugin_name if dist is None else f'{dist} {version}'
            source = f'satclip-tg plugin {plugin_name!r} ({where})'
            entries, problem = _call_hook(impl.function, hook_name)
            if problem is not None:
                warnings.warn(
                    f'{source} failed in {hook_name} and its {label}s are '
                    f'skipped: {problem}',
                    PluginWarning,
                    stacklevel=3,
                )
                continue
            for entry in entries:
                checked = _check_entry(entry)
                if isinstance(checked, str):
                    warnings.warn(
                        f'{source} returned an invalid {label} from {hook_name}, '
                        f'which is skipped: {checked}',
                        PluginWarning,
                        stacklevel=3,
                    )
                    continue
                name, factory = checked
                # The built-in modules are one plugin to the user.
                plugin = (
                    BUILTIN_PLUGIN_NAME
                    if plugin_name in self._builtin_names
                    else plugin_name
                )
                component = Component(kind, name, factory, plugin, dist, version)
                kept = table.get(name)
                if kept is None:
                    table[name] = component
                    continue
                if kept.plugin == BUILTIN_PLUGIN_NAME:
                    message = (
                        f'{source} registers a {label} named {name!r} in '
                        f'{hook_name}, a built-in name; the built-in is kept '
                        f"and the plugin's {label} is skipped: rename it"
                    )
                else:
                    message = (
                        f'two plugins register a {label} named {name!r} in '
                        f'{hook_name}: {kept.provider} and {component.provider}; '
                        f'the first is kept and the second skipped: uninstall or '
                        f'disable one of them'
                    )
                warnings.warn(message, PluginWarning, stacklevel=3)
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

        An image backbone that no built-in or plugin registers, but whose name
        timm knows, is built around that timm architecture (see
        `satclip_tg.image.timm_models`); it is not listed by `names` or
        `components`, and a registered name always wins.

        Raises:
            UnknownComponentError: If no component of that kind has that name;
                the message lists the available names and close matches.
        """
        table = self._collect(kind)
        if name in table:
            return table[name]
        unregistered = _unregistered_component(kind, name)
        if unregistered is not None:
            return unregistered
        label = COMPONENT_KINDS[kind][1]
        available = ', '.join(table) or '(none)'
        candidates = [*table, *_unregistered_names(kind)]
        close = list(dict.fromkeys(difflib.get_close_matches(name, candidates, n=3)))
        suggestion = f' Did you mean {" or ".join(map(repr, close))}?' if close else ''
        beyond = _unregistered_hint(kind)
        raise UnknownComponentError(
            f'unknown {label} {name!r}.{suggestion} Available: {available}'
            f'{", " + beyond if beyond else ""}. '
            f'Plugins add more: see `satclip-tg plugins`.'
        )


def _unregistered_component(kind: ComponentKind, name: str) -> Component | None:
    # Only image backbones accept names beyond the registry: timm's.
    if kind != 'image_backbone':
        return None
    from ..image.timm_models import TIMM_PROVIDER, timm_factory, timm_version

    factory = timm_factory(name)
    if factory is None:
        return None
    return Component(kind, name, factory, TIMM_PROVIDER, 'timm', timm_version())


def _unregistered_names(kind: ComponentKind) -> tuple[str, ...]:
    if kind != 'image_backbone':
        return ()
    from ..image.timm_models import timm_model_names

    return timm_model_names()


def _unregistered_hint(kind: ComponentKind) -> str:
    if kind != 'image_backbone':
        return ''
    from ..image.timm_models import TIMM_HINT

    return TIMM_HINT


def _check_api_version(plugin: object, name: str) -> None:
    declared = getattr(plugin, 'SATCLIP_TG_HOOK_API', hookspecs.HOOK_API_VERSION)
    if declared != hookspecs.HOOK_API_VERSION:
        raise ValueError(
            f'plugin {name} was written for satclip-tg hook contract version '
            f'{declared}, but this satclip-tg implements version '
            f'{hookspecs.HOOK_API_VERSION}; upgrade the plugin or satclip-tg'
        )


def _distribution_of(entry_point: importlib.metadata.EntryPoint) -> tuple[str, str]:
    # Broken metadata of a plugin's distribution must not stop its warning.
    try:
        dist = entry_point.dist
        if dist is not None:
            return dist.metadata['Name'] or '<unnamed distribution>', dist.version
    except Exception:
        pass
    return '<unknown distribution>', '?'


def _call_hook(
    function: Callable[[], object], hook_name: str
) -> tuple[list[tuple[object, object]], str | None]:
    """Call one plugin's hook and read the mapping it returns.

    Args:
        function: The plugin's hook implementation.
        hook_name: The hook's name, for the message.

    Returns:
        The ``(name, factory)`` pairs, unchecked, and ``None``; or no pairs and
        what went wrong.

    Raises:
        KeyboardInterrupt: If the hook or the mapping raises it.
    """
    try:
        provided = function()
        if not isinstance(provided, Mapping):
            return [], (
                f'{hook_name} must return a mapping of name to factory, got '
                f'{type(provided).__name__}'
            )
        # Read in full here, so that a mapping whose iteration fails half-way
        # is skipped as a whole rather than half registered.
        return [(name, factory) for name, factory in provided.items()], None
    except KeyboardInterrupt:
        raise
    except BaseException as error:
        return [], f'{_describe_error(error)}{_not_an_exception(error)}'


def _check_entry(entry: tuple[object, object]) -> tuple[str, Callable[..., Any]] | str:
    """Check one ``(name, factory)`` pair returned by a hook.

    Args:
        entry: The pair.

    Returns:
        The name, as a plain ``str``, and the factory; or what is wrong.

    Raises:
        KeyboardInterrupt: If inspecting the pair raises it.
    """
    raw_name, factory = entry
    try:
        if not isinstance(raw_name, str):
            return f'the name {_describe(raw_name)} is not a string'
        # A plain copy: a str subclass could redefine hashing or equality and
        # so corrupt the table.
        name = str.__str__(raw_name)
        if not name.strip():
            return f'the name {name!r} is empty'
        if not callable(factory):
            return f'the factory of {name!r}, {_describe(factory)}, is not callable'
    except KeyboardInterrupt:
        raise
    except BaseException as error:
        return f'checking it raised {_describe_error(error)}'
    return name, factory


def _describe(value: object) -> str:
    """A short ``repr`` of something a plugin returned, which cannot fail."""
    try:
        text = repr(value)
    except KeyboardInterrupt:
        raise
    except BaseException:
        text = f'<{type(value).__name__} object>'
    return text if len(text) <= 60 else f'{text[:57]}...'


def _describe_error(error: BaseException) -> str:
    """``'Type: message'`` of an error a plugin raised, which cannot fail."""
    try:
        text = str(error)
    except KeyboardInterrupt:
        raise
    except BaseException:
        text = ''
    name = type(error).__name__
    return f'{name}: {text}' if text else name


def _not_an_exception(error: BaseException) -> str:
    if isinstance(error, Exception):
        return ''
    return ' (a plugin must not exit or raise a BaseException)'


def _own_distribution() -> tuple[str, str]:
    try:
        return 'satclip-tg', importlib.metadata.version('satclip-tg')
    except importlib.metadata.PackageNotFoundError:
        return 'satclip-tg', 'unknown'


def disabled_plugin_names() -> list[str]:
    """The installed plugins switched off in ``SATCLIP_TG_DISABLE_PLUGINS``.

    The variable holds names separated by commas; each is an entry-point name
    (``rff`` in ``[project.entry-points.satclip_tg] rff = ...``) or a
    distribution name (``satclip-tg-rff``), compared as pip compares
    distribution names: case, ``-``, ``_`` and ``.`` do not matter. Built-in
    components cannot be switched off.

    Returns:
        The names, as written.
    """
    value = os.environ.get(DISABLE_VARIABLE, '')
    return [name.strip() for name in value.split(',') if name.strip()]


def _normalize(name: str) -> str:
    # PEP 503 normalization, so that satclip_tg_rff names satclip-tg-rff.
    return re.sub(r'[-_.]+', '-', name).lower()


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
