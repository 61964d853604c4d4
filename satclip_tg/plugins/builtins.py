"""The built-in plugins: the ONE list of the modules that register built-ins.

Built-in components are registered through the public hooks like any
plugin's, from modules that sit beside their features (as pytest's
``default_plugins``): `BUILTIN_PLUGIN_MODULES` names them, and the registry
(`satclip_tg.plugins.manager`) imports each by name and registers it. To add
a built-in kind of component, write a ``hooks`` module with ``@hookimpl``
functions beside the feature and add its name here; nothing else imports it.
"""

#: Modules with the ``@hookimpl`` functions of the built-in components, by
#: name, in the order they are registered.
BUILTIN_PLUGIN_MODULES: tuple[str, ...] = (
    'satclip_tg.location.encodings.hooks',
    'satclip_tg.location.networks.hooks',
    'satclip_tg.image.hooks',
    'satclip_tg.datasets.downstream.hooks',
)
