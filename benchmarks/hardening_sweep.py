"""A sweep of bad, careless and hostile inputs against the ``satclip-tg`` CLI.

Each case runs ``python -m satclip_tg ...`` in a subprocess on inputs made in
a temporary folder, and its outcome is classified:

* **clear error**: a non-zero exit with one ``error: ...`` line and no
  traceback (what a user error must give);
* **traceback**: a Python traceback on standard error;
* **silent wrong**: exit 0 where the input is wrong (the case expects a
  refusal), or a refusal where the case expects success;
* **crash**: killed by a signal, or a non-zero exit without any message;
* **left behind**: after the run, a temporary (``*.partial*``) file or a
  partial output lies beside the output.

Kill cases start a long command, SIGKILL it mid-write, and check that a rerun
leaves no temporary file behind.

The last line reads ``tried <n> / clear error <n> / traceback <n> / silent
wrong <n> / crash <n> / left behind <n>`` (plus the accepted-as-intended
cases). Run from the repository root::

    .venv/bin/python benchmarks/hardening_sweep.py          # a few minutes
    .venv/bin/python benchmarks/hardening_sweep.py -k embed # only some cases
"""

import argparse
import json
import os
import pathlib
import pickle
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: How a one-line user error starts (sub-commands prefix the program name).
ERROR_LINE = re.compile(r'^(satclip-tg(: | [\w-]+: ))?error: ')
FIXTURE = ROOT / 'tests' / 'data' / 's2_100k'
DEMO = ROOT / 'configs' / 'demo.yaml'


@dataclass
class Case:
    """One input to try.

    Attributes:
        name: Short name.
        argv: Arguments of ``satclip-tg`` (``{work}`` is the case's folder).
        prepare: Makes the case's files in its folder.
        expect: ``'error'`` (a clear refusal is right) or ``'ok'``.
        outputs: Output paths (relative) that must not exist after an error.
        env: Extra environment variables.
    """

    name: str
    argv: list[str]
    prepare: Callable[[pathlib.Path], None] = lambda work: None
    expect: str = 'error'
    outputs: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def tiny_checkpoint(path: pathlib.Path, corrupt: str | None = None) -> None:
    """A satclip-tg location-encoder checkpoint (optionally damaged)."""
    from satclip_tg import build_location_encoder

    torch.manual_seed(0)
    encoder = build_location_encoder(
        'sphericalharmonics',
        'siren',
        embed_dim=4,
        positional_encoding_args={'legendre_polys': 3},
        network_args={'hidden_dim': 8, 'num_hidden_layers': 1},
    )
    state = {f'location_encoder.{k}': v for k, v in encoder.state_dict().items()}
    config = dict(encoder.config)
    if corrupt == 'nan':
        key = next(iter(state))
        state[key] = state[key].clone().fill_(float('nan'))
    if corrupt == 'recipe':
        config = {
            **config,
            'positional_encoding_args': {'legendre_polys': 20000},
        }
    checkpoint = {
        'state_dict': state,
        'satclip_tg': {
            'format': 1,
            'location_encoder': {
                'config': config,
                'state_dict_prefix': 'location_encoder.',
            },
        },
    }
    torch.save(checkpoint, path)
    if corrupt == 'truncated':
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])


def points_csv(work: pathlib.Path, text: str, name: str = 'points.csv') -> None:
    (work / name).write_text(text)


def with_checkpoint(
    prepare: Callable[[pathlib.Path], None] | None = None, corrupt: str | None = None
) -> Callable[[pathlib.Path], None]:
    def make(work: pathlib.Path) -> None:
        tiny_checkpoint(work / 'enc.ckpt', corrupt)
        if prepare is not None:
            prepare(work)

    return make


def copy_fixture(
    work: pathlib.Path, rows: list[dict[str, object]] | None = None
) -> None:
    import shutil

    shutil.copytree(FIXTURE, work / 'data', ignore=shutil.ignore_patterns('*.py'))
    if rows is not None:
        pd.DataFrame(rows).to_csv(work / 'data' / 'index.csv', index=False)


class _Exploit:
    """Unpickling it runs ``touch pwned``: a malicious "checkpoint"."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, ('touch pwned',)


MALICIOUS_PICKLE = pickle.dumps(_Exploit())
EMBED = ['embed', '--encoder', '{work}/enc.ckpt', '--quiet']
EMBED_PARQUET = [
    *EMBED,
    '--input',
    '{work}/points.csv',
    '--output',
    '{work}/out.parquet',
]
GOOD = 'lon,lat\n2.35,48.86\n-122.3,47.6\n'
LIVE = [
    f'--config={DEMO}',
    '--data.init_args.root={work}/data',
    '--data.init_args.crop_size=16',
    '--data.init_args.scale=10000',
    '--data.init_args.insert_zero_b10=true',
    '--data.init_args.num_workers=0',
    '--model.init_args.model=resnet18',
    '--model.init_args.model_args={}',
    '--model.init_args.in_channels=13',
    '--trainer.fast_dev_run=true',
    '--trainer.enable_progress_bar=false',
]


def embed_case(
    name: str, text: str = GOOD, *flags: str, corrupt: str | None = None
) -> Case:
    """``embed`` of a ``points.csv`` holding ``text`` (plus ``flags``) that must
    be refused without writing ``out.parquet``."""
    return Case(
        name,
        [*EMBED_PARQUET, *flags],
        with_checkpoint(lambda w: points_csv(w, text), corrupt=corrupt),
        outputs=['out.parquet'],
    )


def cases() -> list[Case]:
    found = [
        # embed: inputs
        Case(
            'embed ok',
            EMBED_PARQUET,
            with_checkpoint(lambda w: points_csv(w, GOOD)),
            'ok',
        ),
        Case(
            'embed missing input',
            [*EMBED, '--input', '{work}/none.csv', '--output', '{work}/out.parquet'],
            with_checkpoint(),
            outputs=['out.parquet'],
        ),
        embed_case('embed empty file', ''),
        Case(
            'embed binary as csv',
            EMBED_PARQUET,
            with_checkpoint(lambda w: (w / 'points.csv').write_bytes(os.urandom(512))),
            outputs=['out.parquet'],
        ),
        Case(
            'embed latin-1 csv',
            EMBED_PARQUET,
            with_checkpoint(
                lambda w: (w / 'points.csv').write_bytes(
                    'name,lon,lat\nZürich,8.5,47.4\n'.encode('latin-1')
                )
            ),
            outputs=['out.parquet'],
        ),
        embed_case('embed duplicate lon columns', 'lon,lon,lat\n1,2,3\n'),
        embed_case(
            'embed lat-col equals lon-col', GOOD, '--lon-col', 'lat', '--lat-col', 'lat'
        ),
        embed_case('embed boolean coordinates', 'lon,lat\nTrue,False\nFalse,True\n'),
        embed_case('embed text coordinates', 'lon,lat\neast,north\n'),
        embed_case('embed out-of-range latitude', 'lon,lat\n10,95\n'),
        embed_case('embed NaN coordinate', 'lon,lat\n10,\n'),
        embed_case('embed swapped lat/lon', 'lat,lon\n48.86,200.0\n'),
        Case(
            'embed output is input',
            [
                *EMBED,
                '--input',
                '{work}/points.csv',
                '--output',
                '{work}/points.csv',
                '--overwrite',
            ],
            with_checkpoint(lambda w: points_csv(w, GOOD)),
        ),
        Case(
            'embed output exists',
            [*EMBED, '--input', '{work}/points.csv', '--output', '{work}/out.csv'],
            with_checkpoint(
                lambda w: (points_csv(w, GOOD), points_csv(w, 'keep', 'out.csv'))
            ),
        ),
        Case(
            'embed output folder is a file',
            [*EMBED, '--input', '{work}/points.csv', '--output', '{work}/file/out.csv'],
            with_checkpoint(
                lambda w: (points_csv(w, GOOD), points_csv(w, 'x', 'file'))
            ),
        ),
        Case(
            'embed unknown output suffix',
            [*EMBED, '--input', '{work}/points.csv', '--output', '{work}/out.xlsx'],
            with_checkpoint(lambda w: points_csv(w, GOOD)),
            outputs=['out.xlsx'],
        ),
        # embed: encoders
        Case(
            'embed missing checkpoint',
            [
                'embed',
                '--encoder',
                '{work}/none.ckpt',
                '--input',
                '{work}/points.csv',
                '--output',
                '{work}/out.parquet',
                '--offline',
            ],
            lambda w: points_csv(w, GOOD),
            outputs=['out.parquet'],
        ),
        Case(
            'embed random-bytes checkpoint',
            EMBED_PARQUET,
            lambda w: (
                points_csv(w, GOOD),
                (w / 'enc.ckpt').write_bytes(os.urandom(4096)),
            ),
            outputs=['out.parquet'],
        ),
        embed_case('embed truncated checkpoint', corrupt='truncated'),
        embed_case('embed NaN weights', corrupt='nan'),
        embed_case('embed crafted recipe', corrupt='recipe'),
        Case(
            'embed pickle with code',
            EMBED_PARQUET,
            lambda w: (
                points_csv(w, GOOD),
                (w / 'enc.ckpt').write_bytes(MALICIOUS_PICKLE),
            ),
            outputs=['out.parquet'],
        ),
        embed_case('embed unknown device', GOOD, '--device', 'quantum'),
        # embed-grid
        Case(
            'embed-grid zero resolution',
            [
                'embed-grid',
                '--encoder',
                '{work}/enc.ckpt',
                '--resolution',
                '0',
                '--output',
                '{work}/g.tif',
                '--quiet',
            ],
            with_checkpoint(),
            outputs=['g.tif'],
        ),
        Case(
            'embed-grid inverted bbox',
            [
                'embed-grid',
                '--encoder',
                '{work}/enc.ckpt',
                '--resolution',
                '1',
                '--bbox',
                '10',
                '10',
                '0',
                '0',
                '--output',
                '{work}/g.tif',
                '--quiet',
            ],
            with_checkpoint(),
            outputs=['g.tif'],
        ),
        Case(
            'embed-grid huge grid',
            [
                'embed-grid',
                '--encoder',
                '{work}/enc.ckpt',
                '--resolution',
                '0.002',
                '--output',
                '{work}/g.tif',
                '--quiet',
            ],
            with_checkpoint(),
            outputs=['g.tif'],
        ),
        Case(
            'embed-grid ok',
            [
                'embed-grid',
                '--encoder',
                '{work}/enc.ckpt',
                '--resolution',
                '10',
                '--output',
                '{work}/g.tif',
                '--quiet',
            ],
            with_checkpoint(),
            'ok',
        ),
        # fit / validate (LightningCLI)
        Case(
            'fit config typo', ['fit', f'--config={DEMO}', '--model.init_args.lrr=0.1']
        ),
        Case('fit wrong type', ['fit', f'--config={DEMO}', '--trainer.max_epochs=abc']),
        Case('fit missing config', ['fit', '--config={work}/none.yaml']),
        Case(
            'fit broken YAML',
            ['fit', '--config={work}/bad.yaml'],
            lambda w: (w / 'bad.yaml').write_text('model: [unclosed\n'),
        ),
        Case(
            'fit batch size 0',
            ['fit', *LIVE, '--data.init_args.batch_size=0'],
            copy_fixture,
        ),
        Case(
            'fit unknown backbone',
            ['fit', *LIVE, '--model.init_args.model=resnet1888'],
            copy_fixture,
        ),
        Case('fit bad devices', ['fit', *LIVE, '--trainer.devices=abc'], copy_fixture),
        Case(
            'fit unavailable accelerator',
            ['fit', *LIVE, '--trainer.accelerator=cuda'],
            copy_fixture,
        )
        if not torch.cuda.is_available()
        else None,
        Case(
            'fit missing data root',
            ['fit', *LIVE, '--data.init_args.root={work}/none'],
        ),
        Case(
            'fit index escapes root',
            ['fit', *LIVE],
            lambda w: copy_fixture(
                w,
                [
                    {'fn': '../../etc/passwd', 'lon': 1.0, 'lat': 2.0},
                    {'fn': 'patch_0.tif', 'lon': 1.0, 'lat': 2.0},
                ],
            ),
        ),
        Case(
            'fit index lists missing tiles',
            ['fit', *LIVE],
            lambda w: copy_fixture(
                w,
                [{'fn': f'patch_{i}.tif', 'lon': 1.0, 'lat': 2.0} for i in range(8)]
                + [{'fn': 'gone.tif', 'lon': 1.0, 'lat': 2.0}],
            ),
        ),
        Case(
            'fit corrupt tile',
            ['fit', *LIVE],
            lambda w: (
                copy_fixture(w),
                (w / 'data' / 'images' / 'patch_3.tif').write_bytes(b'not a tiff' * 50),
            ),
        ),
        Case('fit ok', ['fit', *LIVE], copy_fixture, 'ok'),
        # cache-features
        Case(
            'cache-features unfrozen',
            [
                'cache-features',
                '--config',
                str(DEMO),
                '--output',
                '{work}/cache',
                '--views',
                '2',
                '--',
                *LIVE[1:9],
                '--model.init_args.freeze_backbone=false',
            ],
            copy_fixture,
            outputs=['cache'],
        ),
        Case(
            'cache-features foreign folder',
            [
                'cache-features',
                '--config',
                str(DEMO),
                '--output',
                '{work}/mine',
                '--views',
                '2',
                '--',
                *LIVE[1:9],
            ],
            lambda w: (
                copy_fixture(w),
                (w / 'mine').mkdir(),
                (w / 'mine' / 'notes.txt').write_text('mine'),
            ),
        ),
        Case(
            'cache-features band mismatch',
            [
                'cache-features',
                '--config',
                str(DEMO),
                '--output',
                '{work}/cache',
                '--views',
                '2',
                '--',
                *LIVE[1:8],
            ],
            copy_fixture,
            outputs=['cache'],
        ),
        Case(
            'cache-features zero views',
            [
                'cache-features',
                '--config',
                str(DEMO),
                '--output',
                '{work}/cache',
                '--views',
                '0',
            ],
        ),
        # benchmark
        Case(
            'benchmark unknown task',
            [
                'benchmark',
                '--tasks',
                'no_such_task',
                '--no-baselines',
                '--quiet',
                '--encoders',
                'wrap',
            ],
        ),
        Case(
            'benchmark unknown encoder',
            [
                'benchmark',
                '--tasks',
                'land_sea',
                '--no-baselines',
                '--quiet',
                '--encoders',
                'no_such_encoder',
            ],
        ),
        Case(
            'benchmark too few points',
            [
                'benchmark',
                '--tasks',
                'land_sea',
                '--no-baselines',
                '--quiet',
                '--encoders',
                'wrap',
                '--num-points',
                '6',
                '--probe',
                'linear',
                '--output',
                '{work}/report',
            ],
            outputs=['report'],
        ),
        # data
        Case(
            'data bluemarble zero patches',
            ['data', 'bluemarble', '--root', '{work}/bm', '--n', '0'],
        ),
        Case(
            'data bluemarble foreign folder',
            ['data', 'bluemarble', '--root', '{work}/bm', '--n', '4'],
            lambda w: ((w / 'bm').mkdir(), (w / 'bm' / 'mine.txt').write_text('mine')),
        ),
        Case('unknown sub-command', ['no-such-command']),
    ]
    return [case for case in found if case is not None]


@dataclass
class Outcome:
    case: str
    verdict: str
    code: int
    detail: str


def run_case(case: Case, work: pathlib.Path, timeout: float) -> Outcome:
    case.prepare(work)
    argv = [a.replace('{work}', str(work)) for a in case.argv]
    env = {**os.environ, 'PYTHONWARNINGS': 'ignore', **case.env}
    try:
        result = subprocess.run(
            [sys.executable, '-m', 'satclip_tg', *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=work,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return Outcome(case.name, 'crash', -1, f'no answer in {timeout:.0f} s')
    err = result.stderr
    errors = [line for line in err.splitlines() if ERROR_LINE.match(line)]
    leftovers = [p.name for p in work.rglob('*') if '.partial' in p.name]
    first = errors[0][:160] if errors else err.strip().splitlines()[-1:] or ['']
    detail = first if isinstance(first, str) else first[0][:160]
    if (work / 'pwned').exists():
        return Outcome(case.name, 'silent wrong', result.returncode, 'pickle code ran')
    if result.returncode < 0:
        return Outcome(case.name, 'crash', result.returncode, detail)
    if 'Traceback (most recent call last)' in err:
        return Outcome(case.name, 'traceback', result.returncode, detail)
    if leftovers:
        return Outcome(
            case.name, 'left behind', result.returncode, ', '.join(leftovers)
        )
    if case.expect == 'ok':
        verdict = 'accepted' if result.returncode == 0 else 'silent wrong'
        return Outcome(case.name, verdict, result.returncode, detail)
    if result.returncode == 0:
        return Outcome(case.name, 'silent wrong', 0, 'accepted a bad input')
    partial = [o for o in case.outputs if (work / o).exists()]
    if partial:
        return Outcome(case.name, 'left behind', result.returncode, ', '.join(partial))
    if len(errors) == 1 or (
        result.returncode == 2 and 'usage:' in err and err.count('error:') == 1
    ):
        return Outcome(case.name, 'clear error', result.returncode, detail)
    if not err.strip():
        return Outcome(case.name, 'crash', result.returncode, 'no message')
    return Outcome(case.name, 'traceback', result.returncode, detail)


def kill_case(
    name: str,
    argv: list[str],
    prepare: Callable[[pathlib.Path], None],
    work: pathlib.Path,
    after: float,
) -> Outcome:
    """SIGKILL a command after ``after`` seconds, rerun it, look for leftovers."""
    prepare(work)
    argv = [a.replace('{work}', str(work)) for a in argv]
    process = subprocess.Popen(
        [sys.executable, '-m', 'satclip_tg', *argv],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(after)
    process.send_signal(signal.SIGKILL)
    process.wait()
    rerun = subprocess.run(
        [sys.executable, '-m', 'satclip_tg', *argv],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    leftovers = [p.name for p in work.rglob('*') if '.partial' in p.name]
    if leftovers:
        return Outcome(name, 'left behind', rerun.returncode, ', '.join(leftovers[:3]))
    if rerun.returncode != 0:
        return Outcome(name, 'crash', rerun.returncode, rerun.stderr.strip()[-160:])
    return Outcome(name, 'clear error', 0, 'rerun finished, nothing left behind')


def report(outcome: Outcome) -> None:
    print(
        f'{outcome.verdict:13} {outcome.case:40} rc={outcome.code:<4} {outcome.detail}',
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-k', default='', help='only cases whose name contains this')
    parser.add_argument('--timeout', type=float, default=300)
    parser.add_argument('--no-kills', action='store_true')
    parser.add_argument('--json', type=pathlib.Path)
    args = parser.parse_args()
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory() as folder:
        for index, case in enumerate(c for c in cases() if args.k in c.name):
            work = pathlib.Path(folder) / f'case{index}'
            work.mkdir()
            outcome = run_case(case, work, args.timeout)
            outcomes.append(outcome)
            report(outcome)
        if not args.no_kills and not args.k:
            kills = [
                (
                    'kill embed-grid mid-write',
                    [
                        'embed-grid',
                        '--encoder',
                        '{work}/enc.ckpt',
                        '--resolution',
                        '0.25',
                        '--output',
                        '{work}/g.tif',
                        '--quiet',
                        '--yes',
                        '--overwrite',
                    ],
                    with_checkpoint(),
                    6.0,
                ),
                (
                    'kill cache-features mid-run',
                    [
                        'cache-features',
                        '--config',
                        str(DEMO),
                        '--output',
                        '{work}/cache',
                        '--views',
                        '2',
                        '--shard-size',
                        '2',
                        '--',
                        *LIVE[1:9],
                    ],
                    copy_fixture,
                    8.0,
                ),
            ]
            for index, (name, argv, prepare, after) in enumerate(kills):
                work = pathlib.Path(folder) / f'kill{index}'
                work.mkdir()
                outcome = kill_case(name, argv, prepare, work, after)
                outcomes.append(outcome)
                report(outcome)
    counts = Counter(o.verdict for o in outcomes)
    if args.json:
        args.json.write_text(json.dumps([o.__dict__ for o in outcomes], indent=2))
    print(
        f'tried {len(outcomes)} / clear error {counts["clear error"]} / traceback '
        f'{counts["traceback"]} / silent wrong {counts["silent wrong"]} / crash '
        f'{counts["crash"]} / left behind {counts["left behind"]} (accepted as '
        f'intended: {counts["accepted"]})'
    )


if __name__ == '__main__':
    main()
