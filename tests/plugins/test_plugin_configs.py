"""The example plugins' configs run `satclip-tg fit` by component name.

Each config in ``configs/plugin_*.yaml`` names a component that only an example
plugin under ``plugins/`` provides; ``./run setup`` installs those plugins
(editable), and these tests run each config with ``fast_dev_run`` on the tiny
S2-100K fixture (12 bands, 13 after the empty B10 is inserted).
"""

import importlib.metadata
import pathlib

import pytest

from satclip_tg.cli import main
from satclip_tg.plugins import get_registry

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = ROOT / 'tests' / 'data' / 's2_100k'
CONFIGS = sorted((ROOT / 'configs').glob('plugin_*.yaml'))

#: Which distribution and component each example config needs.
NEEDS = {
    'plugin_rff_resnet18': ('satclip-tg-rff', 'positional_encoding', 'rff'),
    'plugin_smp_resnet34': ('satclip-tg-smp', 'image_backbone', 'smp:resnet34'),
    'plugin_koppen': ('satclip-tg-koppen', 'downstream_task', 'koppen'),
}


def fast_args(tmp_path) -> list[str]:
    return [
        '--trainer.fast_dev_run=true',
        '--trainer.accelerator=cpu',
        '--trainer.devices=1',
        '--trainer.precision=32-true',
        f'--trainer.default_root_dir={tmp_path}',
        f'--data.init_args.root={FIXTURE}',
        '--data.init_args.batch_size=4',
        '--data.init_args.num_workers=0',
        '--data.init_args.crop_size=32',
    ]


def require(distribution: str) -> None:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f'{distribution} is not installed (./run setup installs it)')


def test_every_example_plugin_has_a_config() -> None:
    assert [config.stem for config in CONFIGS] == sorted(NEEDS)
    plugins = sorted(path.parent.name for path in ROOT.glob('plugins/*/pyproject.toml'))
    assert plugins == sorted(distribution for distribution, _, _ in NEEDS.values())


@pytest.mark.parametrize('config', CONFIGS, ids=lambda path: path.stem)
def test_plugin_config_passes_fast_dev_run(config, tmp_path, offline_weights) -> None:
    distribution, kind, name = NEEDS[config.stem]
    require(distribution)
    component = get_registry().get(kind, name)
    assert component.distribution == distribution
    assert f': {name}\n' in config.read_text()
    if kind == 'downstream_task':
        # Downstream tasks label points from real packaged data.
        reason = component.factory().unavailable_reason()
        if reason is not None:
            pytest.skip(f'{name} data is not installed: {reason}')
        args = [
            '--trainer.fast_dev_run=true',
            '--trainer.accelerator=cpu',
            f'--trainer.default_root_dir={tmp_path}',
            '--data.init_args.num_points=200',
        ]
    else:
        args = fast_args(tmp_path)
    assert main(['fit', f'--config={config}', *args]) == 0
