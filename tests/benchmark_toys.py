"""Toy downstream tasks, their plugin fixture and a tiny checkpoint, for tests.

The benchmark tests run on these instead of the packaged data: `Bands` and
`EastWest` sample the sphere, `Unavailable` is never loaded, `task_fixture`
registers a dict of tasks as a plugin for one test, and `save_checkpoint`
writes a small encoder in the layout `SatCLIPTask` writes.
"""

import pathlib
import types
from typing import Any

import numpy as np
import pytest
import torch

from satclip_tg import build_location_encoder
from satclip_tg.datasets.downstream import readers
from satclip_tg.location import LocationEncoder
from satclip_tg.plugins import get_registry, hookimpl

#: The recipe of the tiny location encoder `save_checkpoint` writes.
TINY_RECIPE: dict[str, Any] = {
    'positional_encoding': 'sphericalharmonics',
    'network': 'siren',
    'embed_dim': 6,
    'positional_encoding_args': {'legendre_polys': 3},
    'network_args': {'hidden_dim': 8, 'num_hidden_layers': 1},
}


class Bands:
    """Regression: the sine of the latitude."""

    task_type = 'regression'
    num_classes = None

    def load(self, num_points, seed):
        coords = readers.sample_sphere(num_points, seed)
        return coords, np.sin(np.radians(coords[:, 1]))


class EastWest:
    """Classification: eastern or western hemisphere."""

    task_type = 'classification'
    num_classes = 2
    classes = ('west', 'east')

    def load(self, num_points, seed):
        coords = readers.sample_sphere(num_points, seed)
        return coords, (coords[:, 0] > 0).astype(np.int64)


class Unavailable:
    """A task whose data is not installed: it must never be loaded."""

    task_type = 'regression'
    num_classes = None

    def unavailable_reason(self):
        return 'toy-data is not installed: pip install toy-data'

    def load(self, num_points, seed):  # pragma: no cover - never called
        raise AssertionError('an unavailable task must not be loaded')


def task_fixture(plugin_name: str, tasks: dict[str, type]) -> Any:
    """A ``toy_tasks`` fixture registering ``tasks`` as plugin ``plugin_name``.

    Assign the result to a module-level name in a test module; the fixture
    yields the registry and unregisters the plugin after the test.
    """
    plugin = types.ModuleType(plugin_name)
    plugin.SATCLIP_TG_HOOK_API = 1  # type: ignore[attr-defined]

    @hookimpl
    def satclip_tg_downstream_tasks():
        return dict(tasks)

    plugin.satclip_tg_downstream_tasks = satclip_tg_downstream_tasks  # type: ignore[attr-defined]

    @pytest.fixture(name='toy_tasks')
    def toy_tasks():
        registry = get_registry()
        registry.register(plugin, name=plugin_name)
        yield registry
        registry.unregister(plugin_name)

    return toy_tasks


def save_checkpoint(
    path: pathlib.Path,
    seed: int = 0,
    explode: bool = False,
    encoder: LocationEncoder | None = None,
) -> pathlib.Path:
    """Save a location encoder in satclip-tg's checkpoint format at ``path``.

    Args:
        path: Where the checkpoint goes.
        seed: Seed of the `TINY_RECIPE` encoder built when ``encoder`` is None.
        explode: Finite last-layer weights so large that the features overflow
            to infinity (NaN weights are refused by the loader itself).
        encoder: The encoder to save instead of a `TINY_RECIPE` one.

    Returns:
        ``path``.
    """
    if encoder is None:
        torch.manual_seed(seed)
        encoder = build_location_encoder(
            TINY_RECIPE['positional_encoding'],
            TINY_RECIPE['network'],
            embed_dim=TINY_RECIPE['embed_dim'],
            positional_encoding_args=TINY_RECIPE['positional_encoding_args'],
            network_args=TINY_RECIPE['network_args'],
        )
    state = encoder.state_dict()
    if explode:
        state['network.last_layer.weight'] = torch.full_like(
            state['network.last_layer.weight'], 3e38
        )
    torch.save(
        {
            'state_dict': {f'location_encoder.{k}': v for k, v in state.items()},
            'satclip_tg': {
                'format': 1,
                'location_encoder': {
                    'config': encoder.config,
                    'state_dict_prefix': 'location_encoder.',
                },
            },
        },
        path,
    )
    return path
