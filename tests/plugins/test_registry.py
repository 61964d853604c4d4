import importlib.metadata
import types
import typing
import warnings

import pytest
import torch

import satclip_tg
from satclip_tg.location.encodings.sinusoidal import Wrap
from satclip_tg.plugins import (
    ComponentConflictError,
    PluginWarning,
    Registry,
    UnknownComponentError,
    get_registry,
    hookimpl,
    reset_registry,
)

BUILTIN_ENCODINGS = [
    'cartesian3d',
    'direct',
    'grid',
    'spherec',
    'spherecplus',
    'spherem',
    'spheremplus',
    'sphericalharmonics',
    'theory',
    'wrap',
]


def make_plugin(**hooks) -> types.SimpleNamespace:
    """A plugin object whose hooks return the given mappings (or raise)."""
    plugin = types.SimpleNamespace()
    for hook_name, value in hooks.items():

        def implementation(value=value):
            if isinstance(value, BaseException):
                raise value
            return value

        implementation.__name__ = hook_name
        setattr(plugin, hook_name, hookimpl(implementation))
    return plugin


@pytest.fixture
def registry(monkeypatch) -> Registry:
    """A registry with only the built-ins, installed as the process-wide one."""
    fresh = Registry(load_entry_points=False)
    monkeypatch.setattr('satclip_tg.location.api.get_registry', lambda: fresh)
    return fresh


def test_builtins_are_listed() -> None:
    assert set(BUILTIN_ENCODINGS) <= set(satclip_tg.list_positional_encodings())
    assert {'siren', 'fcnet', 'mlp', 'linear'} <= set(satclip_tg.list_networks())
    names = satclip_tg.list_positional_encodings()
    assert names == sorted(names)


def test_builtins_come_through_the_public_hooks() -> None:
    component = get_registry().get('positional_encoding', 'sphericalharmonics')
    assert component.plugin == 'satclip_tg.builtins'
    assert component.distribution == 'satclip-tg'
    assert component.provider.startswith('satclip-tg ')


def test_unknown_name_lists_available_and_close_matches() -> None:
    with pytest.raises(UnknownComponentError) as info:
        satclip_tg.get_positional_encoding('sphericalharmonic')
    message = str(info.value)
    assert "unknown positional encoding 'sphericalharmonic'" in message
    assert "Did you mean 'sphericalharmonics'" in message
    for name in BUILTIN_ENCODINGS:
        assert name in message
    with pytest.raises(ValueError, match="unknown location network 'sirne'"):
        satclip_tg.get_network('sirne', 4, 4)


def test_runtime_plugin_adds_a_component(registry) -> None:
    class Doubled(Wrap):
        def encode(self, coords):
            return 2 * super().encode(coords)

    registry.register(
        make_plugin(satclip_tg_positional_encodings={'doubled': Doubled}), name='mine'
    )
    assert 'doubled' in satclip_tg.list_positional_encodings()
    encoder = satclip_tg.build_location_encoder('doubled', 'linear', embed_dim=3)
    assert encoder(torch.zeros(5, 2)).shape == (5, 3)
    assert registry.get('positional_encoding', 'doubled').provider == 'mine'
    registry.unregister('mine')
    assert 'doubled' not in satclip_tg.list_positional_encodings()


def test_clash_with_a_builtin_keeps_the_builtin(registry) -> None:
    registry.register(
        make_plugin(satclip_tg_networks={'siren': torch.nn.Linear, 'own': Wrap}),
        name='impostor',
    )
    with pytest.warns(PluginWarning) as record:
        names = registry.names('network')
    assert [str(w.message) for w in record] == [
        "satclip-tg plugin 'impostor' (impostor) registers a location network "
        "named 'siren' in satclip_tg_networks, a built-in name; the built-in is "
        "kept and the plugin's location network is skipped: rename it"
    ]
    assert 'own' in names
    assert registry.get('network', 'siren').plugin == 'satclip_tg.builtins'
    # Other kinds are unaffected by a clash among networks.
    assert 'wrap' in registry.names('positional_encoding')


@pytest.mark.parametrize('order', [('zeta', 'alpha'), ('alpha', 'zeta')])
def test_clash_between_plugins_keeps_one_whatever_the_order(registry, order) -> None:
    factories = {'alpha': torch.nn.Linear, 'zeta': torch.nn.Bilinear}
    for name in order:
        registry.register(
            make_plugin(satclip_tg_networks={'shared': factories[name]}), name=name
        )
    with pytest.warns(
        PluginWarning,
        match=r"two plugins register a location network named 'shared' in "
        r'satclip_tg_networks: alpha and zeta; the first is kept',
    ):
        component = registry.get('network', 'shared')
    assert (component.plugin, component.factory) == ('alpha', torch.nn.Linear)
    assert 'siren' in registry.names('network')


def test_conflict_error_stays_public() -> None:
    # No longer raised by the registry, but importable for code that catches it.
    assert issubclass(ComponentConflictError, RuntimeError)


def test_invalid_entries_are_skipped_and_the_rest_kept(registry) -> None:
    class Unprintable:
        def __repr__(self) -> str:
            raise RuntimeError('no repr')

    class Named(str):
        """A str subclass, stored as a plain str."""

    registry.register(
        make_plugin(
            satclip_tg_networks={
                42: torch.nn.Linear,
                '': torch.nn.Linear,
                '  ': torch.nn.Linear,
                'not_callable': 'nope',
                Unprintable(): torch.nn.Linear,
                Named('named'): torch.nn.Linear,
                'fine': torch.nn.Linear,
            }
        ),
        name='sloppy',
    )
    with pytest.warns(PluginWarning) as record:
        names = registry.names('network')
    problems = [str(w.message).split('which is skipped: ')[1] for w in record]
    assert problems == [
        'the name 42 is not a string',
        "the name '' is empty",
        "the name '  ' is empty",
        "the factory of 'not_callable', 'nope', is not callable",
        'the name <Unprintable object> is not a string',
    ]
    assert all(
        str(w.message).startswith(
            "satclip-tg plugin 'sloppy' (sloppy) returned an invalid location "
            'network from satclip_tg_networks'
        )
        for w in record
    )
    assert {'fine', 'named', 'siren'} <= set(names)
    assert type(next(n for n in names if n == 'named')) is str


def test_mapping_failing_during_iteration_skips_the_hook(registry) -> None:
    class Exploding(dict):
        def items(self):
            yield 'half', torch.nn.Linear
            raise ValueError('iteration broke')

    registry.register(
        make_plugin(
            satclip_tg_networks=Exploding(),
            satclip_tg_positional_encodings={'kept': Wrap},
        ),
        name='flaky',
    )
    with pytest.warns(
        PluginWarning,
        match=r"'flaky' \(flaky\) failed in satclip_tg_networks and its location "
        r'networks are skipped: ValueError: iteration broke',
    ):
        names = registry.names('network')
    assert 'half' not in names and 'siren' in names
    assert 'kept' in registry.names('positional_encoding')


def test_keyboard_interrupt_from_a_hook_propagates(registry) -> None:
    registry.register(
        make_plugin(satclip_tg_networks=KeyboardInterrupt()), name='interrupted'
    )
    with pytest.raises(KeyboardInterrupt):
        registry.names('network')


def test_failing_hook_is_skipped_with_a_warning(registry) -> None:
    registry.register(
        make_plugin(
            satclip_tg_positional_encodings=RuntimeError('boom'),
            satclip_tg_networks={'ok_net': torch.nn.Linear},
        ),
        name='half_broken',
    )
    with pytest.warns(PluginWarning, match=r"'half_broken'.*RuntimeError: boom"):
        names = registry.names('positional_encoding')
    assert 'sphericalharmonics' in names
    assert 'ok_net' in registry.names('network')


def test_hook_returning_a_non_mapping_is_skipped(registry) -> None:
    registry.register(
        make_plugin(satclip_tg_networks=['not', 'a', 'mapping']), name='odd'
    )
    with pytest.warns(PluginWarning, match='must return a mapping'):
        assert 'siren' in registry.names('network')


def test_incompatible_hook_contract_is_rejected(registry) -> None:
    plugin = make_plugin(satclip_tg_networks={})
    plugin.SATCLIP_TG_HOOK_API = 99
    with pytest.raises(ValueError, match='hook contract version 99'):
        registry.register(plugin, name='future')


class FakeDistribution:
    metadata: typing.ClassVar = {'Name': 'satclip-tg-fake'}
    version = '9.9'


def fake_entry_points(*entries):
    def entry_points(group=None):
        assert group == 'satclip_tg'
        return [
            importlib.metadata.EntryPoint(name, value, 'satclip_tg')._for(
                FakeDistribution()
            )
            for name, value in entries
        ]

    return entry_points


def test_entry_points_load_and_broken_ones_only_warn(monkeypatch) -> None:
    module = types.ModuleType('fake_satclip_plugin')
    module.satclip_tg_networks = hookimpl(lambda: {'fake_net': torch.nn.Linear})
    module.satclip_tg_networks.__name__ = 'satclip_tg_networks'
    monkeypatch.setitem(__import__('sys').modules, 'fake_satclip_plugin', module)
    monkeypatch.setattr(
        importlib.metadata,
        'entry_points',
        fake_entry_points(
            ('good', 'fake_satclip_plugin'), ('broken', 'no_such_module_anywhere')
        ),
    )
    with pytest.warns(
        PluginWarning, match=r"'broken' from distribution satclip-tg-fake 9\.9"
    ):
        registry = Registry()
    component = registry.get('network', 'fake_net')
    assert component.distribution == 'satclip-tg-fake'
    assert component.version == '9.9'
    assert 'siren' in registry.names('network')


def test_reset_registry_rebuilds() -> None:
    first = get_registry()
    reset_registry()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        second = get_registry()
    assert first is not second
    assert second.names('network') == first.names('network')
