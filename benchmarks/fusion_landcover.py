"""Does fusing a location embedding with image features help? Blue Marble -> land cover.

Task: classify Blue Marble patches (``./run demo``'s data, by default the
10,000-patch set ``data/bluemarble-demo-10k`` when present) into the 17
MODIS MCD12C1 2019 IGBP land-cover classes at their centres (the
benchmark's ``land_cover`` labels; ``satclip-tg benchmark --download-data``
once).

Three feature sets, each scored by the benchmark's probe (`fit_probe`:
standardized features, logistic regression or MLP) under the benchmark's
outer spatial-block CV (10-degree blocks, 5 folds) and several split seeds.
To fit in minutes on 2 cores, the probe's penalty is one fixed value
(``--penalty``, the same for all three) unless ``--inner-cv`` asks for the
benchmark's inner spatial-block CV over its penalty grid (one fit per inner
fold and penalty, plus a refit, instead of one fit). The feature sets:

* image: frozen MOSAIKS features of the patch (the cached centre view of
  ``data/<set>-features`` when present, else computed here);
* location: the frozen location encoder's embedding of the patch centre
  (the newest ``runs/demo-*/satclip-demo.ckpt`` by default, else the
  released convention's spherical harmonics, L = 10, no network);
* fused: both, concatenated: `LocationFusionClassification`'s ``concat``
  fusion with a frozen image model and a linear (or MLP) head.

Prints accuracy and macro-F1 (mean and [min, max] over folds x seeds).

Usage::

    python benchmarks/fusion_landcover.py
    python benchmarks/fusion_landcover.py --probe mlp --seeds 0 1
    python benchmarks/fusion_landcover.py --encoder microsoft/SatCLIP-ViT16-L40
"""

import argparse
import pathlib
import time

import numpy as np
import torch
from numpy.typing import NDArray

from satclip_tg.datasets.bluemarble_landcover import BlueMarbleLandCover
from satclip_tg.datasets.downstream.readers import IGBP_CLASSES
from satclip_tg.datasets.splits import spatial_block_kfold
from satclip_tg.evaluation.evaluation import accuracy, inner_folds, macro_f1
from satclip_tg.evaluation.probes import ProbeConfig, fit_probe

ROOT = pathlib.Path(__file__).resolve().parents[1]
VARIANTS = ('image', 'location', 'fused')


def default_data() -> pathlib.Path:
    for name in ('bluemarble-demo-10k', 'bluemarble-demo'):
        if (ROOT / 'data' / name / 'index.csv').is_file():
            return ROOT / 'data' / name
    raise SystemExit('no Blue Marble data: run ./run demo first (its data step)')


def default_encoder() -> str:
    checkpoints = sorted(ROOT.glob('runs/demo-*/satclip-demo.ckpt'))
    return str(checkpoints[-1]) if checkpoints else 'sh'


def image_features(dataset: BlueMarbleLandCover) -> NDArray:
    """MOSAIKS features: the cache's centre view, or computed here."""
    root, points = dataset.root, dataset.points
    cache = root.parent / f'{root.name}-features'
    if (cache / 'manifest.json').is_file():
        from satclip_tg.features.reader import FeatureCache

        features = FeatureCache(cache)
        if np.allclose(features.points(), points):
            print(f'image features: MOSAIKS, cached centre view of {cache}')
            return np.asarray(features.features()[:, 0], dtype=np.float64)
    from satclip_tg.image.mosaiks import MosaiksImageEncoder

    print('image features: MOSAIKS (256 filters, 3 x 3), computed now')
    backbone = MosaiksImageEncoder(
        3, 1, num_filters=256, patches_from=str(root), scale=255.0
    )
    out = []
    with torch.no_grad():
        for start in range(0, len(dataset), 512):
            images = torch.stack(
                [
                    dataset[i]['image']
                    for i in range(start, min(start + 512, len(dataset)))
                ]
            )
            out.append(backbone.encode_features(images).double().numpy())
    return np.concatenate(out)


def location_features(spec: str, points: NDArray[np.float64]) -> NDArray:
    """The frozen location encoder's embeddings of the points."""
    if spec == 'sh':
        from satclip_tg import get_positional_encoding

        encoder: torch.nn.Module = get_positional_encoding(
            'sphericalharmonics', legendre_polys=10
        )
        print('location features: spherical harmonics L = 10 (no network)')
    else:
        from satclip_tg.pretrained import load_location_encoder

        encoder = load_location_encoder(spec)
        print(f'location features: {spec} ({encoder.config})')
    encoder.eval()
    with torch.no_grad():
        return encoder(torch.as_tensor(points)).double().numpy()


def summary(values: list[float]) -> str:
    return f'{np.mean(values):.3f} [{min(values):.3f}, {max(values):.3f}]'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', type=pathlib.Path, default=None)
    parser.add_argument('--encoder', default=None)
    parser.add_argument('--probe', choices=('linear', 'mlp'), default='linear')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--folds', type=int, default=5)
    parser.add_argument('--block-size', type=float, default=10.0)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--penalty', type=float, default=1e-4)
    parser.add_argument('--inner-cv', action='store_true')
    parser.add_argument('--limit', type=int, default=None, help='N random patches')
    args = parser.parse_args()
    start = time.perf_counter()
    root = args.data or default_data()
    spec = args.encoder or default_encoder()

    dataset = BlueMarbleLandCover(root)
    points, labels = dataset.points, dataset.labels
    image = image_features(dataset)
    location = location_features(spec, points)
    if args.limit:
        keep = np.sort(np.random.default_rng(0).permutation(len(labels))[: args.limit])
        points, labels, image, location = (
            points[keep],
            labels[keep],
            image[keep],
            location[keep],
        )
    features = {
        'image': image,
        'location': location,
        'fused': np.concatenate([image, location], axis=1),
    }
    selection = 'inner CV' if args.inner_cv else f'penalty {args.penalty:g}'
    counts = np.bincount(labels, minlength=len(IGBP_CLASSES))
    print(
        f'data: {root} ({len(labels)} patches; {int((counts > 0).sum())} of 17 '
        f'classes present; water {counts[0] / len(labels):.0%}); probe '
        f'{args.probe} ({selection}); '
        f'spatial-block CV, {args.folds} folds x seeds {args.seeds}'
    )

    if args.inner_cv:
        config = ProbeConfig(threads=args.threads)
    else:
        penalty = (args.penalty,)
        config = ProbeConfig(
            logistic_penalties=penalty, mlp_penalties=penalty, threads=args.threads
        )
    scores: dict[str, dict[str, list[float]]] = {
        v: {'accuracy': [], 'macro_f1': []} for v in VARIANTS
    }
    for seed in args.seeds:
        for fold in spatial_block_kfold(points, args.folds, args.block_size, seed):
            inner = inner_folds(
                'spatial-block', points[fold.train], None, 3, args.block_size, seed
            )
            for variant in VARIANTS:
                x = features[variant]
                fit = fit_probe(
                    args.probe,
                    'classification',
                    x[fold.train],
                    labels[fold.train],
                    x[fold.test],
                    inner,
                    config=config,
                    seed=seed,
                )
                truth = labels[fold.test]
                scores[variant]['accuracy'].append(accuracy(truth, fit.predictions))
                scores[variant]['macro_f1'].append(macro_f1(truth, fit.predictions))
            print(
                f'  seed {seed} {fold.name}: '
                + '  '.join(f'{v} {scores[v]["accuracy"][-1]:.3f}' for v in VARIANTS),
                flush=True,
            )

    print()
    print('| features | accuracy mean [min, max] | macro-F1 mean [min, max] |')
    print('|---|---|---|')
    for variant in VARIANTS:
        print(
            f'| {variant} | {summary(scores[variant]["accuracy"])} | '
            f'{summary(scores[variant]["macro_f1"])} |'
        )
    fused, best_single = scores['fused'], []
    for metric in ('accuracy', 'macro_f1'):
        gain = np.array(fused[metric]) - np.maximum(
            scores['image'][metric], scores['location'][metric]
        )
        best_single.append(
            f'{metric}: fused beats both single sources on {(gain > 0).sum()} of '
            f'{len(gain)} folds (mean gain {gain.mean():+.3f})'
        )
    print('; '.join(best_single))
    print(f'time: {time.perf_counter() - start:.0f} s')


if __name__ == '__main__':
    main()
