"""Start-up of the ``satclip-tg`` command: ``--help`` wall time, modules loaded.

Each figure comes from fresh interpreters, so nothing is cached between runs:

* the wall time of ``satclip-tg --help`` (the installed console script, or
  ``python -m satclip_tg`` when it is not on ``PATH``), over several runs;
* the number of ``satclip_tg`` modules and of all modules loaded by
  ``--help`` and by a tiny ``embed`` run (two points, a random encoder of the
  released layout with L = 2), and whether torch, the evaluation code or the
  demo is among them.

The figures before the redesign of issue #13, measured the same way: about
6 s for ``--help`` with torch loaded (through ``__version__``), 31
``satclip_tg`` modules for ``--help`` and 48 for ``embed`` (all of the
benchmark code and the demo included).

Usage::

    python benchmarks/cli_startup.py            # 7 runs of --help
    python benchmarks/cli_startup.py --runs 15
"""

import argparse
import json
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# Runs the command line in-process, then prints the loaded modules.
_MODULES = """
import json, sys
from satclip_tg.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""

# Writes a tiny checkpoint of the released layout and two points.
_FIXTURE = """
import pathlib, sys
sys.path.insert(0, sys.argv[2])
from satclip_checkpoints import torchgeo_model, write_official
folder = pathlib.Path(sys.argv[1])
write_official(folder / 'tiny.ckpt', torchgeo_model(2, embed_dim=4))
(folder / 'points.csv').write_text('lon,lat\\n0,0\\n10,20\\n')
"""

_HEAVY = ('torch', 'lightning', 'pandas')
_FORBIDDEN_IN_EMBED = (
    'satclip_tg.benchmark',
    'satclip_tg.evaluation',
    'satclip_tg.demo',
)


def help_command() -> list[str]:
    """The command that prints the help.

    Returns:
        The console script with ``--help``, or its ``python -m`` equivalent.
    """
    script = shutil.which('satclip-tg')
    if script is None:
        candidate = pathlib.Path(sys.executable).with_name('satclip-tg')
        script = str(candidate) if candidate.exists() else None
    if script is None:
        return [sys.executable, '-m', 'satclip_tg', '--help']
    return [script, '--help']


def time_help(runs: int) -> list[float]:
    """Wall times of ``satclip-tg --help`` in fresh processes.

    Args:
        runs: How many runs.

    Returns:
        The seconds of each run.
    """
    command = help_command()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def loaded_modules(*args: str) -> list[str]:
    """The modules a fresh interpreter holds after running the command line.

    Args:
        *args: The command-line arguments.

    Returns:
        The module names.
    """
    result = subprocess.run(
        [sys.executable, '-c', _MODULES, *args],
        check=True,
        capture_output=True,
        text=True,
    )
    modules: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return modules


def _within(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(f'{root}.') for root in roots)


def describe(label: str, modules: list[str], forbidden: tuple[str, ...]) -> None:
    """Print the module counts of one command.

    Args:
        label: The command.
        modules: The modules it loaded.
        forbidden: Packages it should not load.
    """
    own = [name for name in modules if _within(name, ('satclip_tg',))]
    heavy = [name for name in _HEAVY if name in modules]
    unwanted = sorted({name for name in own if _within(name, forbidden)})
    print(
        f'{label:<20} {len(own):>4} satclip_tg modules, {len(modules):>5} in all; '
        f'heavy: {", ".join(heavy) or "none"}'
        + (f'; UNWANTED: {", ".join(unwanted)}' if unwanted else '')
    )


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=7, help='runs of --help')
    args = parser.parse_args()

    times = time_help(args.runs)
    print(f'satclip-tg --help: {" ".join(help_command()[:-1])}')
    print(
        f'  wall time over {args.runs} runs: min {min(times):.3f} s, '
        f'median {statistics.median(times):.3f} s, max {max(times):.3f} s '
        '(before: about 6 s)'
    )
    describe('--help', loaded_modules('--help'), ())
    tests = pathlib.Path(__file__).resolve().parents[1] / 'tests'
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [sys.executable, '-c', _FIXTURE, folder, str(tests)],
            check=True,
            capture_output=True,
        )
        embed = loaded_modules(
            'embed',
            '--quiet',
            '--encoder',
            f'{folder}/tiny.ckpt',
            '--input',
            f'{folder}/points.csv',
            '--output',
            f'{folder}/out.csv',
        )
        if not pathlib.Path(folder, 'out.csv').exists():
            raise SystemExit('the embed run wrote nothing')
    describe('embed (2 points)', embed, _FORBIDDEN_IN_EMBED)
    print('before the redesign: --help 31 satclip_tg modules, embed 48')


if __name__ == '__main__':
    main()
