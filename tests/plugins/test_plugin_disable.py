"""Switching installed plugins off with ``SATCLIP_TG_DISABLE_PLUGINS``."""

import argparse
import importlib.metadata
import sys
import types
import typing

import pytest
import torch

from satclip_tg.commands import plugins as plugins_command
from satclip_tg.plugins import Registry, disabled_plugin_names, hookimpl
from satclip_tg.plugins.builtins import BUILTIN_PLUGIN_MODULES


class FakeDistribution:
    metadata: typing.ClassVar = {'Name': 'satclip-tg-fake'}
    version = '9.9'


@pytest.fixture
def fake_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType('fake_disable_plugin')

    def satclip_tg_networks() -> dict[str, type[torch.nn.Module]]:
        return {'fake_net': torch.nn.Linear}

    module.satclip_tg_networks = hookimpl(satclip_tg_networks)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, 'fake_disable_plugin', module)

    def entry_points(group: str | None = None) -> list[importlib.metadata.EntryPoint]:
        assert group == 'satclip_tg'
        entry = importlib.metadata.EntryPoint(
            'fake', 'fake_disable_plugin', 'satclip_tg'
        )
        return [entry._for(FakeDistribution())]  # type: ignore[attr-defined]

    monkeypatch.setattr(importlib.metadata, 'entry_points', entry_points)
    monkeypatch.delenv('SATCLIP_TG_DISABLE_PLUGINS', raising=False)


def test_an_enabled_plugin_registers(fake_plugin: None) -> None:
    registry = Registry()
    assert 'fake_net' in registry.names('network')
    assert registry.disabled == []


@pytest.mark.parametrize(
    'value', ['fake', 'satclip-tg-fake', 'other, SATCLIP_TG_FAKE', 'satclip.tg.fake']
)
def test_a_disabled_plugin_is_not_imported(
    fake_plugin: None, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv('SATCLIP_TG_DISABLE_PLUGINS', value)
    registry = Registry()
    assert 'fake_net' not in registry.names('network')
    assert 'siren' in registry.names('network')
    assert registry.disabled == [('fake', 'satclip-tg-fake', '9.9')]


def test_the_argument_wins_over_the_environment(
    fake_plugin: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv('SATCLIP_TG_DISABLE_PLUGINS', 'fake')
    assert 'fake_net' in Registry(disabled=()).names('network')
    assert 'fake_net' not in Registry(disabled=['fake']).names('network')


def test_disabled_plugin_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('SATCLIP_TG_DISABLE_PLUGINS', ' a, ,b-c ,')
    assert disabled_plugin_names() == ['a', 'b-c']
    monkeypatch.delenv('SATCLIP_TG_DISABLE_PLUGINS')
    assert disabled_plugin_names() == []


def test_the_plugins_command_shows_disabled_plugins(
    fake_plugin: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv('SATCLIP_TG_DISABLE_PLUGINS', 'fake')
    monkeypatch.setattr(
        'satclip_tg.plugins.get_registry', lambda: Registry(), raising=True
    )
    status = plugins_command.run(argparse.Namespace(kind='network'))
    out = capsys.readouterr().out
    assert status == 0
    assert 'fake_net' not in out
    assert 'disabled by SATCLIP_TG_DISABLE_PLUGINS: fake (satclip-tg-fake 9.9)' in out


def test_a_name_that_matches_nothing_is_reported(
    fake_plugin: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv('SATCLIP_TG_DISABLE_PLUGINS', 'nothing-installed')
    monkeypatch.setattr('satclip_tg.plugins.get_registry', lambda: Registry())
    plugins_command.run(argparse.Namespace(kind='network'))
    out = capsys.readouterr().out
    assert 'SATCLIP_TG_DISABLE_PLUGINS names no installed plugin' in out
    assert 'fake_net' in out


def test_builtins_cannot_be_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(load_entry_points=False, disabled=['satclip-tg', 'builtins'])
    assert 'siren' in registry.names('network')
    assert registry.get('network', 'siren').plugin == 'satclip_tg.builtins'


def test_the_builtin_modules_are_listed_by_name() -> None:
    assert all(isinstance(name, str) for name in BUILTIN_PLUGIN_MODULES)
    assert 'satclip_tg.location.encodings.hooks' in BUILTIN_PLUGIN_MODULES
    assert 'satclip_tg.location.networks.hooks' in BUILTIN_PLUGIN_MODULES
    assert 'satclip_tg.image.hooks' in BUILTIN_PLUGIN_MODULES
