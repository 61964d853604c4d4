"""What the command line imports: ``--help`` no torch, ``embed`` no evaluation.

Each check runs in a fresh interpreter, whose ``sys.modules`` shows what the
command imported. The time ``--help`` takes is measured by
``benchmarks/cli_startup.py``, not here.
"""

import json
import pathlib
import subprocess
import sys

from satclip_checkpoints import torchgeo_model, write_official

# Runs the command line in-process, then prints the loaded modules.
RUN = """
import json, sys
from satclip_tg.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as exit:
    status = exit.code
print(json.dumps({'status': status, 'modules': sorted(sys.modules)}))
"""


def loaded_modules(*args: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, '-c', RUN, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome['status'] in (0, None), result.stderr
    modules: list[str] = outcome['modules']
    return modules


def test_help_does_not_import_torch() -> None:
    modules = loaded_modules('--help')
    assert 'torch' not in modules
    assert 'lightning' not in modules
    assert 'pandas' not in modules


def test_embed_loads_neither_the_evaluation_nor_the_demo(
    tmp_path: pathlib.Path,
) -> None:
    checkpoint = write_official(tmp_path / 'tiny.ckpt', torchgeo_model(2, embed_dim=4))
    points = tmp_path / 'points.csv'
    points.write_text('lon,lat\n0,0\n10,20\n')
    modules = loaded_modules(
        'embed',
        '--quiet',
        '--encoder',
        str(checkpoint),
        '--input',
        str(points),
        '--output',
        str(tmp_path / 'out.csv'),
    )
    assert (tmp_path / 'out.csv').exists()
    forbidden = ('satclip_tg.benchmark', 'satclip_tg.evaluation', 'satclip_tg.demo')
    loaded = [
        name
        for name in modules
        if any(name == root or name.startswith(f'{root}.') for root in forbidden)
    ]
    assert loaded == []
