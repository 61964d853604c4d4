"""Speed and accuracy of satclip-tg's spherical harmonics versus TorchGeo's.

Measures, in one process and interleaved, the time to encode N points with

* ``satclip_tg`` ``SphericalHarmonics(L)`` (default backend: fused CPU kernel),
* ``satclip_tg`` ``SphericalHarmonics(L, backend='torch')`` (GPU/autograd path),
* ``torchgeo.models.SatCLIP(legendre_polys=L).posenc`` (the named reference),

and checks their accuracy on a subset against a float64 reference built from
scipy's spherical harmonics, converted to the SatCLIP convention.

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


def timed(function, coords: torch.Tensor) -> float:
    start = time.perf_counter()
    out = function(coords)
    elapsed = time.perf_counter() - start
    del out
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--points', type=int, default=100_000)
    parser.add_argument('--degrees', type=int, default=40)
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--accuracy-points', type=int, default=2000)
    args = parser.parse_args()

    from torchgeo.models import SatCLIP

    torch.manual_seed(0)
    coords = area_uniform_points(args.points, seed=0, dtype=torch.float32)
    ours = SphericalHarmonics(args.degrees)
    ours_torch = SphericalHarmonics(args.degrees, backend='torch')
    torchgeo_posenc = SatCLIP(legendre_polys=args.degrees).posenc

    candidates = {
        'satclip-tg (default: fused CPU kernel)': ours,
        "satclip-tg (backend='torch')": ours_torch,
        'torchgeo SatCLIP(...).posenc': torchgeo_posenc,
    }
    start = time.perf_counter()
    ours(coords[:10])
    first_call = time.perf_counter() - start
    times: dict[str, list[float]] = {name: [] for name in candidates}
    with torch.no_grad():
        for function in candidates.values():
            timed(function, coords)  # warm-up
        for _ in range(args.repeats):
            for name, function in candidates.items():
                times[name].append(timed(function, coords))

    print(
        f'Spherical harmonics, L = {args.degrees} ({args.degrees**2} features), '
        f'{args.points:,} points, float32, torch threads = {torch.get_num_threads()}'
    )
    print(f'(first call incl. kernel compilation or cache load: {first_call:.2f} s)')
    reference = statistics.median(times['torchgeo SatCLIP(...).posenc'])
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
    ratio = reference / statistics.median(
        times['satclip-tg (default: fused CPU kernel)']
    )
    verdict = 'PASS' if ratio >= 10 else 'FAIL'
    print(f'speed check (>= 10x torchgeo): {verdict} ({ratio:.1f}x)')


if __name__ == '__main__':
    main()
