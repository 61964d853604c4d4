#!/usr/bin/env python3

"""Write a tiny S2-100K-layout fixture next to this script.

Layout (as the real data set): ``index.csv`` with columns ``fn, lon, lat`` and
``images/patch_<i>.tif``: 12-band uint16 GeoTIFFs, LZW compressed, 10 m
pixels in the UTM zone of the patch centre. The patches are 32 x 32 pixels
(the real ones are 256 x 256) with smooth values in 0..10000, so that each
file compresses to a few KB. Deterministic: running it again gives the same
pixels and coordinates.

Run from anywhere: ``python tests/data/s2_100k/make_fixture.py``.
"""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_transform

ROOT = Path(__file__).resolve().parent
SIZE = 32
BANDS = 12
RESOLUTION = 10.0

# (lon, lat): spread over the globe, including the dateline, high latitudes
# and both hemispheres.
POINTS = [
    (-84.907, 77.864),
    (-68.209, -54.181),
    (2.352, 48.857),
    (151.209, -33.868),
    (-47.883, -15.794),
    (36.817, -1.286),
    (139.692, 35.690),
    (-122.419, 37.775),
    (179.950, -16.500),
    (-179.900, 65.800),
    (77.209, 28.614),
    (18.424, -33.925),
]


def utm_epsg(lon: float, lat: float) -> int:
    """Return the EPSG code of the WGS 84 / UTM zone holding (lon, lat)."""
    zone = min(int((lon + 180) // 6) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def make_image(rng: np.random.Generator) -> np.ndarray:
    """Return a smooth (BANDS, SIZE, SIZE) uint16 image in 0..10000."""
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    image = np.empty((BANDS, SIZE, SIZE), dtype=np.uint16)
    for band in range(BANDS):
        fx, fy = rng.uniform(0.5, 2.0, size=2)
        phase = rng.uniform(0, 2 * np.pi)
        base = rng.uniform(500, 6000)
        amp = rng.uniform(200, 3000)
        values = base + amp * np.sin(2 * np.pi * (fx * x + fy * y) + phase)
        image[band] = np.clip(np.round(values / 50) * 50, 0, 10000).astype(np.uint16)
    return image


def main() -> None:
    """Write index.csv and images/ into the folder of this script."""
    rng = np.random.default_rng(0)
    images = ROOT / 'images'
    if images.exists():
        shutil.rmtree(images)
    images.mkdir()

    rows = []
    for i, (lon, lat) in enumerate(POINTS):
        fn = f'patch_{i}.tif'
        epsg = utm_epsg(lon, lat)
        xs, ys = warp_transform('EPSG:4326', f'EPSG:{epsg}', [lon], [lat])
        half = SIZE * RESOLUTION / 2
        west = round(xs[0] - half, -1)
        north = round(ys[0] + half, -1)
        profile = {
            'driver': 'GTiff',
            'dtype': 'uint16',
            'count': BANDS,
            'height': SIZE,
            'width': SIZE,
            'crs': f'EPSG:{epsg}',
            'transform': from_origin(west, north, RESOLUTION, RESOLUTION),
            'compress': 'lzw',
            'predictor': 2,
            'interleave': 'band',
        }
        with rasterio.open(images / fn, 'w', **profile) as dst:
            dst.write(make_image(rng))
        rows.append({'fn': fn, 'lon': lon, 'lat': lat})

    pd.DataFrame(rows).to_csv(ROOT / 'index.csv', index=False)


if __name__ == '__main__':
    main()
