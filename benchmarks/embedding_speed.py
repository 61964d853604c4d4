"""Embedding speed and accuracy of satclip-tg versus ``torchgeo.models.SatCLIP``.

Both run in the same process on the same weights (a randomly initialised
SatCLIP location encoder of the released architecture: L = 40 spherical
harmonics, SIREN 1600 -> 512 -> 512 -> 256; the architecture, not the
values, sets the speed), interleaved, in float32:

* scattered points: N area-uniform (lon, lat) points; TorchGeo evaluated in
  chunks under ``torch.inference_mode()``, satclip-tg with `embed_points`;
* a global grid at a given resolution: TorchGeo on every cell centre,
  satclip-tg with `embed_grid` (exact row factorisation) and, for reference,
  with `embed_points` on the cell centres;
* accuracy: float32 against float64 of the same implementation, and
  satclip-tg float64 against TorchGeo float64 (away from |lat| > 89.95,
  where TorchGeo clamps).

Usage::

    python benchmarks/embedding_speed.py                     # 1M points, 1 deg grid
    python benchmarks/embedding_speed.py --points 100000 --grid-resolution 2
"""

import argparse
import math
import platform
import statistics
import time

import numpy as np
import torch
from torchgeo.models import SatCLIP

from satclip_tg.embedding import GridSpec, RowFactorization, embed_grid, embed_points
from satclip_tg.pretrained import load_location_encoder


def area_uniform_points(n: int, seed: int, max_lat: float = 90.0) -> np.ndarray:
    generator = np.random.default_rng(seed)
    lon = generator.uniform(-180, 180, n)
    z = generator.uniform(
        -math.sin(math.radians(max_lat)), math.sin(math.radians(max_lat)), n
    )
    lat = np.degrees(np.arcsin(z))
    return np.stack([lon, lat], axis=1)


def torchgeo_model(degrees: int, dtype: torch.dtype, state=None) -> SatCLIP:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        model = SatCLIP(legendre_polys=degrees)
    finally:
        torch.set_default_dtype(previous)
    if state is not None:
        model.load_state_dict(state)
    return model.eval()


def run_torchgeo(model: SatCLIP, coords: np.ndarray, batch: int) -> np.ndarray:
    dtype = model.nnet.last_layer.weight.dtype
    out = np.empty((coords.shape[0], model.nnet.last_layer.weight.shape[0]), np.float32)
    points = torch.from_numpy(coords).to(dtype)
    with torch.inference_mode():
        for start in range(0, coords.shape[0], batch):
            stop = min(start + batch, coords.shape[0])
            out[start:stop] = model(points[start:stop]).float().numpy()
    return out


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def grid_centres(spec: GridSpec) -> np.ndarray:
    lat, lon = np.meshgrid(
        spec.latitudes().numpy(), spec.longitudes().numpy(), indexing='ij'
    )
    return np.stack([lon.reshape(-1), lat.reshape(-1)], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--points', type=int, default=1_000_000)
    parser.add_argument('--degrees', type=int, default=40)
    parser.add_argument('--grid-resolution', type=float, default=1.0)
    parser.add_argument('--repeats', type=int, default=1)
    parser.add_argument('--batch-size', type=int, default=8192, help='satclip-tg chunk')
    parser.add_argument('--torchgeo-batch', type=int, default=16384)
    parser.add_argument('--accuracy-points', type=int, default=20_000)
    args = parser.parse_args()

    torch.manual_seed(0)
    reference = torchgeo_model(args.degrees, torch.float32)
    state = reference.state_dict()
    reference64 = torchgeo_model(args.degrees, torch.float64, state)
    ours = load_location_encoder(state)
    ours64 = load_location_encoder(state, dtype=torch.float64)
    print(
        f'machine: {platform.processor() or platform.machine()}, '
        f'{torch.get_num_threads()} torch threads; torch {torch.__version__}'
    )
    print(
        f'model: L={args.degrees} ({args.degrees**2} harmonics), SIREN '
        f'{args.degrees**2} -> 512 -> 512 -> 256, float32'
    )

    # Warm-up (numba compilation, allocator).
    warm = area_uniform_points(2000, seed=1)
    embed_points(ours, warm)
    run_torchgeo(reference, warm, args.torchgeo_batch)

    scattered(args, reference, ours)
    gridded(args, reference, ours)
    accuracy(args, reference, reference64, ours, ours64)


def line(label: str, rate: float, unit: str, baseline: float | None = None) -> None:
    ratio = f'   ({rate / baseline:.2f}x)' if baseline else ''
    print(f'  {label:<40} {rate:12,.0f} {unit}/s{ratio}')


def scattered(args, reference, ours) -> None:
    coords = area_uniform_points(args.points, seed=0)
    tg_times, our_times = [], []
    for _ in range(args.repeats):
        tg_times.append(
            timed(lambda: run_torchgeo(reference, coords, args.torchgeo_batch))
        )
        our_times.append(
            timed(lambda: embed_points(ours, coords, batch_size=args.batch_size))
        )
    tg_rate = args.points / statistics.median(tg_times)
    our_rate = args.points / statistics.median(our_times)
    print(f'\nscattered points: N = {args.points:,}')
    line('torchgeo.models.SatCLIP', tg_rate, 'points')
    line('satclip-tg embed_points', our_rate, 'points', tg_rate)


def gridded(args, reference, ours) -> None:
    spec = GridSpec.from_bbox((-180, -90, 180, 90), args.grid_resolution)
    cells = spec.width * spec.height
    centres = grid_centres(spec)
    tg_times, fact_times, plain_times = [], [], []
    for _ in range(args.repeats):
        tg_times.append(
            timed(lambda: run_torchgeo(reference, centres, args.torchgeo_batch))
        )
        fact_times.append(timed(lambda: embed_grid(ours, spec)))
        plain_times.append(
            timed(lambda: embed_points(ours, centres, batch_size=args.batch_size))
        )
    tg_rate = cells / statistics.median(tg_times)
    print(
        f'\nglobal grid: {args.grid_resolution:g} deg, '
        f'{spec.width} x {spec.height} = {cells:,} cells'
    )
    line('torchgeo.models.SatCLIP (cell centres)', tg_rate, 'cells')
    line(
        'satclip-tg embed_points (cell centres)',
        cells / statistics.median(plain_times),
        'cells',
        tg_rate,
    )
    line(
        'satclip-tg embed_grid (row-factorised)',
        cells / statistics.median(fact_times),
        'cells',
        tg_rate,
    )


def accuracy(args, reference, reference64, ours, ours64) -> None:
    sample = area_uniform_points(args.accuracy_points, seed=2, max_lat=89.95)
    sample_t = torch.from_numpy(sample)
    with torch.inference_mode():
        exact = ours64(sample_t)
        tg64 = reference64(sample_t)
    ours32 = torch.from_numpy(embed_points(ours, sample)).double()
    tg32 = torch.from_numpy(run_torchgeo(reference, sample, args.torchgeo_batch))
    small = GridSpec.from_bbox((-180, -90, 180, 90), max(args.grid_resolution, 2.0))
    factorization = RowFactorization(ours)
    grid32 = factorization.embed(
        factorization.row_coefficients(small.latitudes()),
        factorization.column_terms(small.longitudes()),
    ).double()
    with torch.inference_mode():
        grid64 = ours64(torch.from_numpy(grid_centres(small))).reshape(grid32.shape)
    rows = [
        ('satclip-tg float64 vs torchgeo float64', exact - tg64),
        ('satclip-tg float32 vs satclip-tg float64', ours32 - exact),
        ('torchgeo float32 vs torchgeo float64', tg32.double() - tg64),
        ('embed_grid float32 vs float64 (grid cells)', grid32 - grid64),
    ]
    print(
        f'\naccuracy: {args.accuracy_points:,} points with |lat| <= 89.95, '
        f'max |difference|'
    )
    for label, difference in rows:
        print(f'  {label:<44} {float(difference.abs().max()):.2e}')


if __name__ == '__main__':
    main()
