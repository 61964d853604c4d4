"""The plugin author's kit and plugin operations.

Covers the conformance checks for image backbones, downstream tasks and whole
plugins (`satclip_tg.testing`), the downstream-task hook contract through an
in-test plugin, and the operations promises: `satclip-tg plugins` lists
installed plugins and survives broken ones, old hook contracts fail loudly
through the entry-point path, and unknown names in YAML list close matches.
"""

import importlib.metadata
import math
import pathlib
import sys
import types
import typing

import pytest
import torch
from torch import nn

from satclip_tg.cli import main
from satclip_tg.image.backbones import timm_backbone
from satclip_tg.location.encodings.sinusoidal import Wrap
from satclip_tg.location.networks import LinearNetwork
from satclip_tg.plugins import (
    HOOK_API_VERSION,
    PluginWarning,
    Registry,
    hookimpl,
    reset_registry,
)
from satclip_tg.testing import (
    check_downstream_task,
    check_image_backbone,
    check_plugin,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = ROOT / 'tests' / 'data' / 's2_100k'


# --- in-test components ------------------------------------------------------
class TinyBackbone(nn.Module):
    """A conv + BatchNorm + dropout backbone with a trainable projection."""

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        weights: str | None = None,
        freeze: bool = True,
        width: int = 4,
        keep_train_mode: bool = False,
        freeze_nothing: bool = False,
    ) -> None:
        super().__init__()
        self.freeze = freeze and not freeze_nothing
        self.keep_train_mode = keep_train_mode
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3),
            nn.BatchNorm2d(width),
            nn.Dropout(0.5),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.projection = nn.Linear(width, num_outputs)
        if self.freeze:
            self.features.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> 'TinyBackbone':
        super().train(mode)
        if self.freeze and not self.keep_train_mode:
            self.features.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.projection(self.features(images))


class LatitudeBands:
    """Toy classification: which of ``num_classes`` latitude bands a point is in."""

    task_type = 'classification'

    def __init__(self, num_classes: int = 3) -> None:
        self.num_classes = num_classes

    def load(self, num_points: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        lon = torch.rand(num_points, generator=generator, dtype=torch.float64) * 360
        uniform = torch.rand(num_points, generator=generator, dtype=torch.float64)
        lat = torch.rad2deg(torch.asin(uniform * 2 - 1))
        bands = ((lat + 90) / 180 * self.num_classes).long()
        return torch.stack([lon - 180, lat], 1), bands.clamp(max=self.num_classes - 1)


class Waves:
    """Toy regression: ``sin(lon) cos(lat)``."""

    task_type = 'regression'
    num_classes = None

    def load(self, num_points: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        coords, _ = LatitudeBands().load(num_points, seed)
        radians = torch.deg2rad(coords)
        return coords, torch.sin(radians[:, 0]) * torch.cos(radians[:, 1])


def make_module(name: str, api: int | None = HOOK_API_VERSION, **hooks):
    """A plugin module whose hooks return the given mappings."""
    module = types.ModuleType(name)
    if api is not None:
        module.SATCLIP_TG_HOOK_API = api
    for hook_name, value in hooks.items():

        def implementation(value=value):
            if isinstance(value, Exception):
                raise value
            return value

        implementation.__name__ = hook_name
        setattr(module, hook_name, hookimpl(implementation))
    return module


def full_plugin(**overrides):
    hooks = {
        'satclip_tg_positional_encodings': {'toy_wrap': Wrap},
        'satclip_tg_networks': {'toy_linear': LinearNetwork},
        'satclip_tg_image_backbones': {'toy_backbone': TinyBackbone},
        'satclip_tg_downstream_tasks': {'toy_bands': LatitudeBands, 'toy_waves': Waves},
    }
    hooks.update(overrides)
    return make_module('satclip_tg_toy', **hooks)


# --- check_image_backbone ------------------------------------------------------
def test_builtin_backbone_passes() -> None:
    check_image_backbone(timm_backbone('resnet18'), in_channels=13)


def test_tiny_backbone_passes() -> None:
    check_image_backbone(TinyBackbone, in_channels=3, backbone_args={'width': 6})


def test_frozen_part_left_in_train_mode_is_caught() -> None:
    with pytest.raises(AssertionError, match='must stay in eval mode'):
        check_image_backbone(TinyBackbone, backbone_args={'keep_train_mode': True})


def test_unfrozen_backbone_is_caught() -> None:
    with pytest.raises(AssertionError, match='every parameter trains'):
        check_image_backbone(TinyBackbone, backbone_args={'freeze_nothing': True})


# --- check_downstream_task and the downstream-task contract -----------------
class NumpyWaves(Waves):
    def load(self, num_points: int, seed: int):
        coords, labels = super().load(num_points, seed)
        return coords.numpy(), labels.numpy()


def test_toy_tasks_pass() -> None:
    check_downstream_task(LatitudeBands())
    check_downstream_task(Waves(), num_points=5, seed=3)
    check_downstream_task(NumpyWaves())


class Broken(Waves):
    def __init__(self, **changes) -> None:
        self.changes = changes
        self.calls = 0

    def load(self, num_points: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        coords, labels = super().load(num_points, seed)
        self.calls += 1
        change = self.changes.get('change')
        if change == 'float32':
            coords = coords.float()
        elif change == 'lat_lon':
            coords = coords.flip(1) * 2
        elif change == 'labels_shape':
            labels = labels[:, None]
        elif change == 'nan':
            labels[0] = math.nan
        elif change == 'random':
            labels = labels + self.calls
        return coords, labels


@pytest.mark.parametrize(
    ('task', 'match'),
    [
        (types.SimpleNamespace(task_type='ranking'), 'task_type must be one of'),
        (
            types.SimpleNamespace(task_type='classification', num_classes=1),
            'num_classes must be an int >= 2',
        ),
        (types.SimpleNamespace(task_type='regression', num_classes=None), 'no load'),
        (Broken(change='float32'), r'\(n, 2\) float64'),
        (Broken(change='lat_lon'), 'invalid coordinates'),
        (Broken(change='labels_shape'), 'labels must have shape'),
        (Broken(change='nan'), 'non-finite'),
        (Broken(change='random'), 'not deterministic'),
    ],
)
def test_contract_violations_are_caught(task, match) -> None:
    with pytest.raises(AssertionError, match=match):
        check_downstream_task(task)


class TooManyBands(LatitudeBands):
    def load(self, num_points: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        coords, labels = super().load(num_points, seed)
        return coords, labels + 1


def test_class_labels_must_be_in_range() -> None:
    task = TooManyBands(2)
    with pytest.raises(AssertionError, match=r'must lie in \[0, 2\)'):
        check_downstream_task(task)


def test_downstream_task_hook_through_a_registry() -> None:
    registry = Registry(load_entry_points=False)
    registry.register(full_plugin(), name='toy')
    assert {'toy_bands', 'toy_waves'} <= set(registry.names('downstream_task'))
    component = registry.get('downstream_task', 'toy_bands')
    assert component.plugin == 'toy'
    task = component.factory(num_classes=4)
    check_downstream_task(task)
    _, labels = task.load(num_points=100, seed=0)
    assert set(labels.tolist()) == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="unknown downstream task 'toy_band'"):
        registry.get('downstream_task', 'toy_band')


# --- check_plugin -------------------------------------------------------------
def test_full_plugin_passes() -> None:
    components = check_plugin(
        full_plugin(), arguments={'toy_backbone': {'width': 3}, 'toy_bands': {}}
    )
    assert [(c.kind, c.name) for c in components] == [
        ('positional_encoding', 'toy_wrap'),
        ('network', 'toy_linear'),
        ('image_backbone', 'toy_backbone'),
        ('downstream_task', 'toy_bands'),
        ('downstream_task', 'toy_waves'),
    ]


@pytest.mark.parametrize(
    ('plugin', 'match'),
    [
        (make_module('no_api', api=None), 'must declare SATCLIP_TG_HOOK_API = 1'),
        (
            make_module('typo', satclip_tg_positional_encoding={'x': Wrap}),
            'unknown hook',
        ),
        (
            make_module('raises', satclip_tg_networks=RuntimeError('boom')),
            'RuntimeError: boom',
        ),
        (make_module('clash', satclip_tg_networks={'siren': LinearNetwork}), 'siren'),
        (make_module('empty', satclip_tg_networks={}), 'provides no components'),
        (
            full_plugin(
                satclip_tg_image_backbones={
                    'leaky': lambda *a, **k: TinyBackbone(*a, **k, keep_train_mode=True)
                }
            ),
            "image_backbone 'leaky'.*eval mode",
        ),
    ],
)
def test_plugin_problems_are_caught(plugin, match) -> None:
    with pytest.raises(AssertionError, match=match):
        check_plugin(plugin)


def test_arguments_must_name_provided_components() -> None:
    with pytest.raises(AssertionError, match="does not provide: \\['nope'\\]"):
        check_plugin(full_plugin(), arguments={'nope': {}})


# --- operations: satclip-tg plugins, broken and old plugins -----------------
class BrokenDistribution:
    metadata: typing.ClassVar = {'Name': 'satclip-tg-broken'}
    version = '0.3.0'


def install_entry_points(monkeypatch, *entries) -> None:
    """Pretend a distribution with these (name, module) entry points is installed."""

    def entry_points(group=None):
        assert group == 'satclip_tg'
        return [
            importlib.metadata.EntryPoint(name, value, 'satclip_tg')._for(
                BrokenDistribution()
            )
            for name, value in entries
        ]

    monkeypatch.setattr(importlib.metadata, 'entry_points', entry_points)
    reset_registry()


@pytest.fixture
def fresh_registry():
    """Rebuild the process-wide registry before and after the test."""
    reset_registry()
    yield
    reset_registry()


def test_cli_survives_a_broken_plugin(monkeypatch, fresh_registry, capsys) -> None:
    monkeypatch.setitem(sys.modules, 'satclip_tg_toy', full_plugin())
    install_entry_points(
        monkeypatch,
        ('broken', 'satclip_tg_no_such_module'),
        ('toy', 'satclip_tg_toy'),
    )
    with pytest.warns(
        PluginWarning,
        match=r"'broken' from distribution satclip-tg-broken 0\.3\.0 could not be "
        r'loaded and is skipped: ModuleNotFoundError',
    ):
        assert main(['plugins']) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ['location', 'network', 'siren', 'satclip-tg'] in [row[:4] for row in rows]
    # The working plugin of the same distribution is listed, all kinds included.
    assert ['downstream', 'task', 'toy_bands', 'satclip-tg-broken', '0.3.0'] in rows
    assert ['positional', 'encoding', 'toy_wrap', 'satclip-tg-broken', '0.3.0'] in rows


def test_cli_survives_a_failing_hook(monkeypatch, fresh_registry, capsys) -> None:
    plugin = full_plugin(satclip_tg_networks=RuntimeError('boom'))
    monkeypatch.setitem(sys.modules, 'satclip_tg_toy', plugin)
    install_entry_points(monkeypatch, ('toy', 'satclip_tg_toy'))
    with pytest.warns(
        PluginWarning,
        match=r"'toy' \(satclip-tg-broken 0\.3\.0\) failed in satclip_tg_networks",
    ):
        assert main(['plugins', '--kind', 'network']) == 0
    out = capsys.readouterr().out
    assert 'siren' in out and 'toy_linear' not in out


def test_old_hook_contract_fails_loudly_through_the_entry_point(
    monkeypatch, fresh_registry, capsys
) -> None:
    monkeypatch.setitem(sys.modules, 'satclip_tg_old', full_plugin())
    sys.modules['satclip_tg_old'].SATCLIP_TG_HOOK_API = HOOK_API_VERSION - 1
    install_entry_points(monkeypatch, ('old', 'satclip_tg_old'))
    with pytest.warns(
        PluginWarning,
        match=rf"'old' from distribution satclip-tg-broken 0\.3\.0 could not be "
        rf'loaded and is skipped: ValueError: .*hook contract version '
        rf'{HOOK_API_VERSION - 1}, but this satclip-tg implements version '
        rf'{HOOK_API_VERSION}',
    ):
        assert main(['plugins']) == 0
    assert 'toy_wrap' not in capsys.readouterr().out


def test_cli_lists_the_installed_example_plugins(fresh_registry, capsys) -> None:
    expected = {
        'satclip-tg-rff': [('positional', 'encoding', 'rff')],
        'satclip-tg-smp': [
            ('image', 'backbone', 'smp:resnet34'),
            ('image', 'backbone', 'smp:efficientnet-b0'),
            ('image', 'backbone', 'smp'),
        ],
    }
    installed = {}
    for distribution in expected:
        try:
            installed[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    if not installed:
        pytest.skip('no example plugin is installed (./run setup installs them)')
    assert main(['plugins']) == 0
    rows = {tuple(line.split()) for line in capsys.readouterr().out.splitlines()}
    for distribution, version in installed.items():
        for kind, label, name in expected[distribution]:
            assert (kind, label, name, distribution, version) in rows


# --- operations: unknown names in YAML ----------------------------------------
def fit_args(tmp_path, *overrides: str) -> list[str]:
    return [
        'fit',
        f'--config={ROOT / "configs" / "sh_l10_resnet18.yaml"}',
        '--trainer.fast_dev_run=true',
        '--trainer.accelerator=cpu',
        '--trainer.devices=1',
        f'--trainer.default_root_dir={tmp_path}',
        f'--data.init_args.root={FIXTURE}',
        '--data.init_args.num_workers=0',
        '--model.init_args.weights=null',
        *overrides,
    ]


@pytest.mark.parametrize(
    ('override', 'message'),
    [
        (
            '--model.init_args.positional_encoding=sphericalharmonic',
            "unknown positional encoding 'sphericalharmonic'. "
            "Did you mean 'sphericalharmonics'?",
        ),
        (
            '--model.init_args.network=sirne',
            "unknown location network 'sirne'. Did you mean 'siren'?",
        ),
        (
            '--model.init_args.model=resnet81',
            "unknown image backbone 'resnet81'. Did you mean 'resnet18'",
        ),
    ],
    ids=['positional_encoding', 'network', 'backbone'],
)
def test_unknown_yaml_name_lists_close_matches(
    tmp_path, capsys: pytest.CaptureFixture[str], override, message
) -> None:
    # A misspelt name is a user error: one line on stderr, exit status 1.
    assert main(fit_args(tmp_path, override)) == 1
    err = capsys.readouterr().err
    assert message in err
    assert 'Available:' in err
