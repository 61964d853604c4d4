"""Ablation of the demo recipe, scored with the project's downstream benchmark.

Each variant is the demo (``configs/demo.yaml`` + ``configs/demo_cached.yaml``)
with some LightningCLI overrides: it caches the MOSAIKS features (reused when
the backbone settings repeat), pretrains on them, and scores the encoder with
the benchmark's protocol (the 8 built-in tasks, 2000 points each,
spatial-block CV with 10-degree blocks, 5 outer and 3 inner folds, seed 0,
MLP probe by default). Each score is set beside:

* the same architecture at random initialisation, averaged over 3 seeds
  (computed once per architecture);
* GeoCLIP's pretrained encoder and the fixed spherical harmonics ``sh``
  (L = 10, no network), computed once.

It prints a Markdown row per variant: the main metric per task (R² or
accuracy), the count of tasks won against the random init, GeoCLIP and
``sh``, and the training time. Results are cached in ``--workdir`` so an
interrupted ablation resumes.

Usage::

    python benchmarks/demo_ablation.py --list
    python benchmarks/demo_ablation.py demo dropout0 jitter0.05 l20
    python benchmarks/demo_ablation.py lr1e-4+jitter4 lr1e-4+seed1
    python benchmarks/demo_ablation.py demo --probe linear
"""

import argparse
import json
import os
import pathlib
import time
from typing import Any

import numpy as np
import torch

from satclip_tg.datasets.bluemarble import build_bluemarble
from satclip_tg.demo.pipeline import (
    DEMO_DATA,
    cache_demo_features,
    new_run_dir,
    pretrain_on_cache,
)
from satclip_tg.evaluation import evaluate, load_points, resolve_encoder
from satclip_tg.evaluation.comparison import MAIN_METRICS
from satclip_tg.evaluation.encoders import random_init_encoder
from satclip_tg.pretrained import load_location_encoder

TASKS = (
    'air_temperature',
    'precipitation',
    'elevation',
    'population',
    'land_cover',
    'country',
    'continent',
    'land_sea',
)
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _json(value: Any) -> str:
    return json.dumps(value, separators=(',', ':'))


def _model(**init_args: Any) -> list[str]:
    return [f'--model.init_args.{k}={_json(v)}' for k, v in init_args.items()]


def _data(**init_args: Any) -> list[str]:
    return [f'--data.init_args.{k}={_json(v)}' for k, v in init_args.items()]


SIREN = {'hidden_dim': 512, 'num_hidden_layers': 2, 'dropout': 0.5}

#: name -> (description, views, LightningCLI overrides on top of the demo
#: configs). The overrides name every setting a row changes.
VARIANTS: dict[str, tuple[str, int, list[str]]] = {
    'demo': ('the demo as configured', 8, []),
    'lr1e-4': ('learning rate 1e-4 (the released recipe)', 8, _model(lr=1e-4)),
    'lr3e-4': ('learning rate 3e-4', 8, _model(lr=3e-4)),
    'lr3e-5': ('learning rate 3e-5', 8, _model(lr=3e-5)),
    'lr1e-5': ('learning rate 1e-5', 8, _model(lr=1e-5)),
    'wd0': ('no weight decay', 8, _model(weight_decay=0.0)),
    'dropout0': (
        'no SIREN dropout',
        8,
        _model(network_args={**SIREN, 'dropout': 0.0}),
    ),
    'jitter0.05': (
        'coordinate jitter 0.05 deg',
        8,
        _data(coordinate_jitter=0.05),
    ),
    'jitter4': ('coordinate jitter 4 deg', 8, _data(coordinate_jitter=4.0)),
    'l20': (
        'L = 20',
        8,
        _model(positional_encoding_args={'legendre_polys': 20}),
    ),
    'l5': (
        'L = 5',
        8,
        _model(positional_encoding_args={'legendre_polys': 5}),
    ),
    'embed128': ('128-d embedding', 8, _model(embed_dim=128)),
    'hidden256': (
        'SIREN capacity 256',
        8,
        _model(network_args={**SIREN, 'hidden_dim': 256}),
    ),
    'epochs20': ('20 epochs', 8, ['--trainer.max_epochs=20']),
    'epochs30': ('30 epochs', 8, ['--trainer.max_epochs=30']),
    'epochs150': (
        '150 epochs (no time limit)',
        8,
        ['--trainer.max_epochs=150', '--trainer.max_time=null'],
    ),
    'views2': ('2 cached views', 2, []),
    'filters64': (
        'MOSAIKS K = 64',
        8,
        _model(
            model_args={
                'num_filters': 64,
                'kernel_size': 3,
                'patches_from': 'data/bluemarble-demo',
                'scale': 255.0,
            }
        ),
    ),
    'filters1024': (
        'MOSAIKS K = 1024',
        8,
        _model(
            model_args={
                'num_filters': 1024,
                'kernel_size': 3,
                'patches_from': 'data/bluemarble-demo',
                'scale': 255.0,
            }
        ),
    ),
    'temperature': (
        'initial temperature 0.2',
        8,
        _model(initial_temperature=0.2),
    ),
    'batch256': ('batch 256', 8, _data(batch_size=256)),
    'batch2048': ('batch 2048', 8, _data(batch_size=2048)),
    'jitter1': ('coordinate jitter 1 deg', 8, _data(coordinate_jitter=1.0)),
    'epochs120': (
        '120 epochs',
        8,
        ['--trainer.max_epochs=120', '--trainer.max_time=null'],
    ),
    'l10hidden1024': (
        'SIREN capacity 1024',
        8,
        _model(network_args={**SIREN, 'hidden_dim': 1024}),
    ),
    'seed1': ('pretraining seed 1', 8, ['--seed_everything=1']),
    'seed2': ('pretraining seed 2', 8, ['--seed_everything=2']),
}


def variant(name: str) -> tuple[str, int, list[str]]:
    """A variant, or several joined by '+' (later overrides win)."""
    parts = [VARIANTS[part] for part in name.split('+')]
    views = next((v for _, v, _ in reversed(parts) if v != 8), 8)
    description = ', '.join(d for d, _, _ in parts)
    return description, views, [o for _, _, overrides in parts for o in overrides]


def score(
    embed: Any, points: dict[str, Any], probe: str, folds: int
) -> dict[str, float]:
    """The main metric of each task for an embedding function."""
    scores = {}
    for name, labelled in points.items():
        features = embed(labelled.coords)
        result = evaluate(
            features,
            labelled.labels,
            labelled.kind,
            coords=labelled.coords,
            split='spatial-block',
            probe=probe,
            num_folds=folds,
            seed=0,
        )
        scores[name] = result.summary()[MAIN_METRICS[labelled.kind]][0]
    return scores


def architecture_key(encoder: torch.nn.Module) -> str:
    return _json(getattr(encoder, 'config', {}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('variants', nargs='*', default=['demo'])
    parser.add_argument('--list', action='store_true')
    parser.add_argument('--probe', default='mlp', choices=('linear', 'mlp'))
    parser.add_argument('--points', type=int, default=2000)
    parser.add_argument('--folds', type=int, default=5)
    parser.add_argument(
        '--workdir', type=pathlib.Path, default=pathlib.Path('runs/ablation')
    )
    parser.add_argument('--data-root', default='data/bluemarble-demo')
    parser.add_argument(
        '--n', type=int, default=DEMO_DATA.n, help='patches in the data set'
    )
    parser.add_argument(
        '--relief',
        action='store_true',
        help='6-band patches with the shaded relief (use --in-channels 6)',
    )
    args = parser.parse_args()
    if args.list:
        for name, (description, views, overrides) in VARIANTS.items():
            print(f'{name:12} {description} (V={views}) {" ".join(overrides)}')
        return
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    args.workdir.mkdir(parents=True, exist_ok=True)
    results_path = args.workdir / f'results-{args.probe}-{args.points}.json'
    results: dict[str, Any] = (
        json.loads(results_path.read_text()) if results_path.is_file() else {}
    )

    def save() -> None:
        results_path.write_text(json.dumps(results, indent=2) + '\n')

    points = {name: load_points(name, args.points, 0) for name in TASKS}
    for baseline in ('geoclip', 'sh'):
        if baseline not in results.setdefault('baselines', {}):
            encoder = resolve_encoder(baseline)
            results['baselines'][baseline] = score(
                encoder.embed, points, args.probe, args.folds
            )
            save()
    data = DEMO_DATA
    build_bluemarble(
        args.data_root,
        args.n,
        patch_size=data.patch_size,
        seed=data.seed,
        land_fraction=data.land_fraction,
        relief=args.relief,
        overwrite=True,
    )
    config = ROOT / 'configs' / 'demo.yaml'
    cached = ROOT / 'configs' / 'demo_cached.yaml'
    for name in args.variants:
        description, views, overrides = variant(name)
        if args.relief:
            overrides = [*overrides, '--model.init_args.in_channels=6']
        if name in results.setdefault('variants', {}):
            continue
        start = time.perf_counter()
        cache, _ = cache_demo_features(config, args.data_root, views, overrides)
        cache_seconds = time.perf_counter() - start
        run_dir = new_run_dir(args.workdir, prefix=name)
        fit_start = time.perf_counter()
        checkpoint = pretrain_on_cache(
            config,
            cached,
            args.data_root,
            cache,
            run_dir,
            [*overrides, '--trainer.enable_progress_bar=false'],
        )
        fit_seconds = time.perf_counter() - fit_start
        encoder = load_location_encoder(checkpoint)
        key = architecture_key(encoder)
        randoms = results.setdefault('random_init', {})
        if key not in randoms:
            companion = random_init_encoder(encoder, [0, 1, 2])
            per_seed = [
                score(embed, points, args.probe, args.folds)
                for embed in companion.seed_embeddings.values()
            ]
            randoms[key] = {t: float(np.mean([s[t] for s in per_seed])) for t in TASKS}
        pretrained = resolve_encoder(f'{name}={checkpoint}')
        metrics = json.loads((run_dir / 'final_metrics.json').read_text())
        results['variants'][name] = {
            'description': description,
            'views': views,
            'overrides': overrides,
            'architecture': key,
            'scores': score(pretrained.embed, points, args.probe, args.folds),
            'cache_seconds': round(cache_seconds, 1),
            'fit_seconds': round(fit_seconds, 1),
            'epochs': metrics['epochs'],
            'val_median_km': metrics['metrics'].get('val_median_km'),
        }
        save()
        report(results)
    report(results)


def report(results: dict[str, Any]) -> None:
    baselines = results.get('baselines', {})
    header = ['variant', *TASKS, 'vs random', 'vs geoclip', 'vs sh', 'fit s']
    print('\n| ' + ' | '.join(header) + ' |')
    print('|' + '---|' * len(header))
    for name in ('geoclip', 'sh'):
        if name in baselines:
            row = [f'{baselines[name][t]:.3f}' for t in TASKS]
            print(f'| {name} | ' + ' | '.join(row) + ' | | | | |')
    for name, variant in results.get('variants', {}).items():
        scores = variant['scores']
        random = results['random_init'][variant['architecture']]
        wins = {
            'random': sum(scores[t] > random[t] for t in TASKS),
            'geoclip': sum(scores[t] > baselines['geoclip'][t] for t in TASKS),
            'sh': sum(scores[t] > baselines['sh'][t] for t in TASKS),
        }
        cells = [f'{scores[t]:.3f} ({scores[t] - random[t]:+.3f})' for t in TASKS]
        print(
            f'| {name} | '
            + ' | '.join(cells)
            + f' | {wins["random"]}/8 | {wins["geoclip"]}/8 | {wins["sh"]}/8 '
            f'| {variant["fit_seconds"]:.0f} |'
        )


if __name__ == '__main__':
    main()
