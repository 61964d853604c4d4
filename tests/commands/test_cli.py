import subprocess
import sys

import pytest

from satclip_tg import __version__
from satclip_tg.cli import main


def test_plugins_lists_builtins_with_provider(capsys) -> None:
    assert main(['plugins']) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ['kind', 'name', 'distribution', 'version']
    rows = [line.split() for line in out[1:]]
    assert [
        'positional',
        'encoding',
        'sphericalharmonics',
        'satclip-tg',
        __version__,
    ] in rows
    assert ['location', 'network', 'siren', 'satclip-tg', __version__] in rows


def test_plugins_kind_filter(capsys) -> None:
    assert main(['plugins', '--kind', 'network']) == 0
    out = capsys.readouterr().out
    assert 'siren' in out and 'wrap' not in out


def test_version_and_usage(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(['--version'])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out
    assert main([]) == 2
    with pytest.raises(SystemExit):
        main(['no-such-command'])


def test_module_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, '-m', 'satclip_tg', 'plugins', '--kind', 'network'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert 'fcnet' in result.stdout
