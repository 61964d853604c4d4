"""Speed and accuracy of satclip-tg's spherical harmonics versus TorchGeo's.

Measures, in one process and in alternating runs, the time to encode N points with

* ``satclip_tg`` ``SphericalHarmonics(L)``: the default, a fused CPU kernel that
  writes into the memory of its previous output once that output is released
  (as in any loop that encodes, uses and drops batches);
* ``torchgeo.models.SatCLIP(legendre_polys=L).posenc`` (the named reference);

then, in a second phase because their fresh allocations disturb the others,
the ``reuse_output_memory=False`` variant and ``backend='torch'`` (the
GPU/autograd path). Calls are separated by a short pause so that one
implementation's idle worker threads do not slow the next one down. Accuracy
is checked on a subset against a float64 reference built from scipy's
spherical harmonics, converted to the SatCLIP convention.

Usage::

    python benchmarks/spherical_harmonics_speed.py [--points 100000] [--degrees 40]
"""

import argparse
import math
import statistics
import time

import numpy as np
import torch

from satclip_tg.location.encodings.spherical_harmonics import SphericalHarmonics


def area_uniform_points(n: int, seed: int, dtype: torch.dtype) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    lon = torch.rand(n, generator=generator, dtype=torch.float64) * 360 - 180
    lat = torch.rad2deg(
        torch.asin(torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1)
    )
    return torch.stack([lon, lat], dim=1).to(dtype)


def scipy_reference(coords: torch.Tensor, degrees: int) -> np.ndarray:
    from scipy import special

    lon, lat = coords.double().numpy().T
    theta, phi = np.radians(lat + 90), np.radians(lon + 180)
    blocks = []
    for degree in range(degrees):
        orders = np.arange(-degree, degree + 1)
        values = special.sph_harm_y(
            degree, np.abs(orders)[None], theta[:, None], phi[:, None]
        )
        sign = (-1.0) ** np.abs(orders)
        blocks.append(
            np.where(
                orders > 0,
                math.sqrt(2) * sign * values.real,
                np.where(
                    orders < 0, math.sqrt(2) * sign * values.imag, math.pi * values.real
                ),
            )
        )
    return np.concatenate(blocks, axis=1)


def timed(function, coords: torch.Tensor, pause: float) -> float:
    time.sleep(pause)
    start = time.perf_counter()
    out = function(coords)
    elapsed = time.perf_counter() - start
    del out
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--points', type=int, default=100_000)
    parser.add_argument('--degrees', type=int, default=40)
    parser.add_argument('--repeats', type=int, default=15)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--pause', type=float, default=0.25)
    parser.add_argument('--accuracy-points', type=int, default=2000)
    args = parser.parse_args()

    from torchgeo.models import SatCLIP

    torch.manual_seed(0)
    coords = area_uniform_points(args.points, seed=0, dtype=torch.float32)
    ours = SphericalHarmonics(args.degrees)
    ours_cold = SphericalHarmonics(args.degrees, reuse_output_memory=False)
    ours_torch = SphericalHarmonics(args.degrees, backend='torch')
    torchgeo_posenc = SatCLIP(legendre_polys=args.degrees).posenc

    default_name = 'satclip-tg (default)'
    reference_name = 'torchgeo SatCLIP(...).posenc'
    candidates = {default_name: ours, reference_name: torchgeo_posenc}
    start = time.perf_counter()
    ours(coords[:10])
    first_call = time.perf_counter() - start
    times: dict[str, list[float]] = {name: [] for name in candidates}
    with torch.no_grad():
        for function in candidates.values():
            timed(function, coords, args.pause)  # warm-up
        # Alternating runs of a few calls each: drift affects both sides
        # alike, while one side's memory churn does not land inside the
        # other's calls (it can slow the next call by tens of milliseconds).
        for _ in range(args.rounds):
            for name, function in candidates.items():
                times[name] += [
                    timed(function, coords, args.pause)
                    for _ in range(args.repeats // args.rounds)
                ]
        # Measured apart: their allocations of fresh memory disturb the others.
        for name, function in (
            ('satclip-tg (fresh output memory)', ours_cold),
            ("satclip-tg (backend='torch')", ours_torch),
        ):
            times[name] = [
                timed(function, coords, args.pause)
                for _ in range(max(3, args.repeats // 3))
            ]
            candidates[name] = function

    print(
        f'Spherical harmonics, L = {args.degrees} ({args.degrees**2} features), '
        f'{args.points:,} points, float32, torch threads = {torch.get_num_threads()}, '
        f'{args.repeats} repeats'
    )
    print(f'(first call incl. kernel compilation or cache load: {first_call:.2f} s)')
    reference = statistics.median(times[reference_name])
    print(f'{"implementation":42s} {"median s":>9s} {"min s":>8s} {"speed-up":>9s}')
    for name, values in times.items():
        median = statistics.median(values)
        print(f'{name:42s} {median:9.3f} {min(values):8.3f} {reference / median:8.1f}x')

    subset = coords[: args.accuracy_points]
    try:
        truth = scipy_reference(subset, args.degrees)
    except ImportError:
        print('scipy not installed: accuracy check skipped')
        return
    print(f'\nMax abs error vs float64 scipy reference on {len(subset):,} points:')
    with torch.no_grad():
        for name, function in candidates.items():
            error = np.abs(function(subset).double().numpy() - truth).max()
            print(f'{name:42s} {error:.2e}')
        ours_error = np.abs(ours(subset).double().numpy() - truth).max()
    verdict = 'PASS' if ours_error < 1e-4 else 'FAIL'
    print(f'accuracy check (satclip-tg float32 within 1e-4): {verdict}')
    ratio = reference / statistics.median(times[default_name])
    verdict = 'PASS' if ratio >= 10 else 'FAIL'
    print(f'speed check, default (>= 10x torchgeo): {verdict} ({ratio:.1f}x)')


if __name__ == '__main__':
    main()
