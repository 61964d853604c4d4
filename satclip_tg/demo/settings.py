"""Settings of the demo's data set, importable without Lightning."""

from dataclasses import dataclass

__all__ = ['DEMO_DATA', 'DEMO_VIEWS', 'DemoData']


@dataclass(frozen=True)
class DemoData:
    """Settings of the demo's Blue Marble data set (`build_bluemarble`).

    Attributes:
        n: Number of patches.
        patch_size: Patch side in mosaic pixels (1/15 degree each).
        seed: Seed of the point sampling.
        land_fraction: Share of points on land; None for the whole globe.
        relief: Stack the shaded relief as bands 4-6 (6-band patches).
    """

    n: int
    patch_size: int
    seed: int
    land_fraction: float | None
    relief: bool = False


#: The data the demo trains on (see ``configs/demo.yaml``).
DEMO_DATA = DemoData(n=20000, patch_size=16, seed=0, land_fraction=0.75)

#: Views per patch in the demo's feature cache (view 0 the centre crop).
DEMO_VIEWS = 8
