"""Hostile plugins are contained: warned about, skipped, and nothing else breaks.

Each case installs real plugin distributions (a module and a ``.dist-info``
with ``entry_points.txt`` in a folder on ``PYTHONPATH``) and runs satclip-tg in
a subprocess, so that a plugin calling ``sys.exit`` or raising another
``BaseException`` could never take the test runner down, even if containment
failed. The cases are grouped to keep the number of subprocesses (each imports
torch) small.
"""

import os
import pathlib
import subprocess
import sys
import textwrap

TESTS = pathlib.Path(__file__).resolve().parents[1]

# Plugin modules by distribution name: (module name, source).
PLUGINS = {
    'friendly': (
        'friendly_plugin',
        """
        import torch
        from satclip_tg.plugins import hookimpl

        SATCLIP_TG_HOOK_API = 1

        @hookimpl
        def satclip_tg_networks():
            return {'friendly_net': torch.nn.Linear}
        """,
    ),
    'exits-on-import': ('exits_on_import', 'import sys\nsys.exit(3)\n'),
    'dooms-on-import': (
        'dooms_on_import',
        """
        class Doom(BaseException):
            pass

        raise Doom('the end of the import')
        """,
    ),
    'closes-on-import': ('closes_on_import', "raise GeneratorExit('closed')\n"),
    'raising-hooks': (
        'raising_hooks',
        """
        import sys
        from satclip_tg.plugins import hookimpl

        class Doom(BaseException):
            pass

        @hookimpl
        def satclip_tg_positional_encodings():
            sys.exit(4)

        @hookimpl
        def satclip_tg_networks():
            raise Doom('from a hook')

        @hookimpl
        def satclip_tg_image_backbones():
            raise GeneratorExit

        @hookimpl
        def satclip_tg_downstream_tasks():
            return 42
        """,
    ),
    'garbage-hooks': (
        'garbage_hooks',
        """
        from collections.abc import Mapping

        import torch
        from satclip_tg.plugins import hookimpl

        class Exploding(Mapping):
            def __init__(self, error):
                self.error = error

            def __getitem__(self, key):
                raise self.error

            def __len__(self):
                return 1

            def __iter__(self):
                raise self.error

        @hookimpl
        def satclip_tg_networks():
            return {
                42: torch.nn.Linear,
                '': torch.nn.Linear,
                'not_callable': 'nope',
                'garbage_ok_net': torch.nn.Linear,
            }

        @hookimpl
        def satclip_tg_positional_encodings():
            return Exploding(RuntimeError('iteration broke'))

        @hookimpl
        def satclip_tg_image_backbones():
            return Exploding(SystemExit(5))

        @hookimpl
        def satclip_tg_downstream_tasks():
            return ['not', 'a', 'mapping']
        """,
    ),
    'clashing-a': (
        'clashing_a',
        """
        import torch
        from satclip_tg.location.encodings.simple import Direct
        from satclip_tg.plugins import hookimpl

        @hookimpl
        def satclip_tg_networks():
            return {'siren': torch.nn.Linear, 'clash_net': torch.nn.Linear}

        @hookimpl
        def satclip_tg_positional_encodings():
            return {'wrap': Direct, 'shared_enc': Direct}
        """,
    ),
    'clashing-b': (
        'clashing_b',
        """
        from satclip_tg.location.encodings.simple import Cartesian3D
        from satclip_tg.plugins import hookimpl

        @hookimpl
        def satclip_tg_positional_encodings():
            return {'shared_enc': Cartesian3D}
        """,
    ),
    'interrupts': (
        'interrupts',
        """
        import os
        from satclip_tg.plugins import hookimpl

        if os.environ.get('INTERRUPT_ON_IMPORT'):
            raise KeyboardInterrupt

        @hookimpl
        def satclip_tg_networks():
            raise KeyboardInterrupt
        """,
    ),
}


def install(site: pathlib.Path, *distributions: str) -> None:
    """Make these distributions of `PLUGINS` discoverable from ``site``."""
    site.mkdir(exist_ok=True)
    for distribution in distributions:
        module, source = PLUGINS[distribution]
        (site / f'{module}.py').write_text(textwrap.dedent(source))
        info = site / f'{distribution.replace("-", "_")}-0.1.dist-info'
        info.mkdir()
        (info / 'METADATA').write_text(
            f'Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1\n'
        )
        (info / 'entry_points.txt').write_text(
            f'[satclip_tg]\n{distribution} = {module}\n'
        )


def run(site: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` with the plugins of ``site`` installed."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        filter(None, [str(site), str(TESTS), env.get('PYTHONPATH')])
    )
    # Warnings shown once each, whatever filter the calling environment sets.
    env['PYTHONWARNINGS'] = 'default'
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def rows(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines()]


def assert_builtins_listed(stdout: str) -> None:
    listed = rows(stdout)
    for row in (
        ['positional', 'encoding', 'sphericalharmonics', 'satclip-tg'],
        ['location', 'network', 'siren', 'satclip-tg'],
        ['image', 'backbone', 'resnet18', 'satclip-tg'],
        ['downstream', 'task', 'continent', 'satclip-tg'],
    ):
        assert row in [r[:4] for r in listed], row


def test_plugins_exiting_on_import_are_skipped(tmp_path) -> None:
    site = tmp_path / 'site'
    install(site, 'exits-on-import', 'dooms-on-import', 'closes-on-import', 'friendly')
    result = run(site, '-m', 'satclip_tg', 'plugins')
    assert result.returncode == 0, result.stderr
    for plugin, error in [
        ('exits-on-import', 'SystemExit: 3'),
        ('dooms-on-import', 'Doom: the end of the import'),
        ('closes-on-import', 'GeneratorExit: closed'),
    ]:
        assert (
            f"PluginWarning: satclip-tg plugin '{plugin}' from distribution "
            f'{plugin} 0.1 could not be loaded and is skipped: {error} (a plugin '
            f'must not exit or raise a BaseException)'
        ) in result.stderr
    assert_builtins_listed(result.stdout)
    assert ['location', 'network', 'friendly_net', 'friendly', '0.1'] in rows(
        result.stdout
    )


def test_raising_hooks_and_garbage_are_skipped(tmp_path) -> None:
    site = tmp_path / 'site'
    install(site, 'raising-hooks', 'garbage-hooks', 'friendly')
    result = run(site, '-m', 'satclip_tg', 'plugins')
    assert result.returncode == 0, result.stderr
    not_allowed = ' (a plugin must not exit or raise a BaseException)'
    for plugin, hook, label, problem in [
        (
            'raising-hooks',
            'positional_encodings',
            'positional encodings',
            'SystemExit: 4' + not_allowed,
        ),
        ('raising-hooks', 'networks', 'location networks', 'Doom: from a hook'),
        ('raising-hooks', 'image_backbones', 'image backbones', 'GeneratorExit'),
        (
            'raising-hooks',
            'downstream_tasks',
            'downstream tasks',
            'satclip_tg_downstream_tasks must return a mapping of name to '
            'factory, got int',
        ),
        (
            'garbage-hooks',
            'positional_encodings',
            'positional encodings',
            'RuntimeError: iteration broke',
        ),
        (
            'garbage-hooks',
            'image_backbones',
            'image backbones',
            'SystemExit: 5' + not_allowed,
        ),
        (
            'garbage-hooks',
            'downstream_tasks',
            'downstream tasks',
            'satclip_tg_downstream_tasks must return a mapping of name to '
            'factory, got list',
        ),
    ]:
        assert (
            f"satclip-tg plugin '{plugin}' ({plugin} 0.1) failed in "
            f'satclip_tg_{hook} and its {label} are skipped: {problem}'
        ) in result.stderr
    # Only the invalid entries of an otherwise valid mapping are skipped.
    for problem in [
        'the name 42 is not a string',
        "the name '' is empty",
        "the factory of 'not_callable', 'nope', is not callable",
    ]:
        assert (
            "satclip-tg plugin 'garbage-hooks' (garbage-hooks 0.1) returned an "
            'invalid location network from satclip_tg_networks, which is '
            f'skipped: {problem}'
        ) in result.stderr
    assert_builtins_listed(result.stdout)
    listed = rows(result.stdout)
    assert ['location', 'network', 'garbage_ok_net', 'garbage-hooks', '0.1'] in listed
    assert ['location', 'network', 'friendly_net', 'friendly', '0.1'] in listed
    assert 'not_callable' not in result.stdout


def test_name_clashes_keep_the_builtin_or_the_first(tmp_path) -> None:
    site = tmp_path / 'site'
    install(site, 'clashing-b', 'clashing-a')
    result = run(site, '-m', 'satclip_tg', 'plugins', '--kind', 'network')
    assert result.returncode == 0, result.stderr
    assert (
        "satclip-tg plugin 'clashing-a' (clashing-a 0.1) registers a location "
        "network named 'siren' in satclip_tg_networks, a built-in name; the "
        "built-in is kept and the plugin's location network is skipped"
    ) in result.stderr
    listed = rows(result.stdout)
    assert ['location', 'network', 'siren', 'satclip-tg'] in [r[:4] for r in listed]
    assert ['location', 'network', 'clash_net', 'clashing-a', '0.1'] in listed
    assert sum(row[2:3] == ['siren'] for row in listed) == 1


def test_library_and_commands_work_beside_every_hostile_plugin(tmp_path) -> None:
    site = tmp_path / 'site'
    install(site, *[name for name in PLUGINS if name != 'interrupts'])
    script = f"""
        import warnings

        import numpy as np
        import torch
        from satclip_checkpoints import torchgeo_model, write_official

        import satclip_tg
        from satclip_tg.cli import main
        from satclip_tg.location.encodings.sinusoidal import Wrap
        from satclip_tg.location.encodings.simple import Direct
        from satclip_tg.location.networks import SirenNet
        from satclip_tg.plugins import PluginWarning, get_registry
        from satclip_tg.tasks import SatCLIPTask

        warnings.simplefilter('ignore', PluginWarning)
        encoder = satclip_tg.build_location_encoder(
            'sphericalharmonics', 'siren', embed_dim=8,
            positional_encoding_args={{'legendre_polys': 3}},
        )
        assert encoder(torch.zeros(4, 2)).shape == (4, 8)
        registry = get_registry()
        assert registry.get('network', 'siren').factory is SirenNet
        assert registry.get('positional_encoding', 'wrap').factory is Wrap
        shared = registry.get('positional_encoding', 'shared_enc')
        assert (shared.distribution, shared.factory) == ('clashing-a', Direct)
        assert 'friendly_net' in satclip_tg.list_networks()

        # What fit builds from the YAML names.
        SatCLIPTask(model='resnet18', network='friendly_net', embed_dim=8)

        tmp = {str(tmp_path)!r}
        model = torchgeo_model(legendre_polys=3, capacity=8, embed_dim=8)
        checkpoint = write_official(tmp + '/encoder.ckpt', model)
        with open(tmp + '/points.csv', 'w') as points:
            points.write('lon,lat\\n8.5,47.4\\n-122.4,37.8\\n')
        assert main([
            'embed', '--quiet', '--offline', '--device', 'cpu',
            '--encoder', str(checkpoint), '--input', tmp + '/points.csv',
            '--output', tmp + '/points.npy',
        ]) == 0
        assert np.load(tmp + '/points.npy').shape == (2, 8)
        assert main(
            ['benchmark', '--list-tasks', '--cache-dir', tmp + '/cache']
        ) == 0
        print('all commands ran')
    """
    result = run(site, '-c', textwrap.dedent(script))
    assert result.returncode == 0, result.stderr
    assert 'all commands ran' in result.stdout
    assert 'continent' in result.stdout


def test_keyboard_interrupt_still_propagates(tmp_path) -> None:
    site = tmp_path / 'site'
    install(site, 'interrupts')
    script = """
        import os
        from satclip_tg.plugins import Registry

        os.environ['INTERRUPT_ON_IMPORT'] = '1'
        try:
            Registry()
        except KeyboardInterrupt:
            print('import: propagated')
        del os.environ['INTERRUPT_ON_IMPORT']
        registry = Registry()
        try:
            registry.names('network')
        except KeyboardInterrupt:
            print('hook: propagated')
    """
    result = run(site, '-c', textwrap.dedent(script))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split('\n')[:2] == ['import: propagated', 'hook: propagated']
