"""Loader hardening: closed-form checkpoints, non-finite weights, crafted recipes."""

import math
import pathlib
import time
import types

import lightning
import numpy as np
import pytest
import torch
from satclip_checkpoints import (
    official_checkpoint,
    random_points,
    resnet18_visual,
    task_layout_checkpoint,
    torchgeo_model,
    write_official,
)
from scipy.special import lpmv

from satclip_tg import build_location_encoder
from satclip_tg.location.encodings import spherical_harmonics
from satclip_tg.location.encodings.base import PositionalEncoding
from satclip_tg.plugins import Registry, hookimpl
from satclip_tg.pretrained import (
    CheckpointError,
    get_pretrained_info,
    load_location_encoder,
    load_satclip,
)
from satclip_tg.pretrained import load as pretrained_load
from satclip_tg.tasks import SatCLIPTask

TINY_TASK = {
    'model': 'resnet18',
    'in_channels': 4,
    'positional_encoding_args': {'legendre_polys': 4},
    'network_args': {'hidden_dim': 16, 'num_hidden_layers': 1},
    'embed_dim': 8,
}

# ------------------------------------------------- the reference, from formulas


def reference_closed_form_harmonics(coords: torch.Tensor, degrees: int) -> np.ndarray:
    """The reference's ``harmonics_calculation='closed-form'`` harmonics.

    Written from the formula of microsoft/satclip's
    ``spherical_harmonics_closed_form.py``: theta = radians(lat + 90),
    phi = radians(lon + 180), the associated Legendre functions *with* the
    Condon-Shortley phase (scipy's `lpmv` has it), the orthonormal
    normalisation and no factor pi on ``m = 0``. Columns ``l = 0..L-1``, within
    each ``m = -l..l``.
    """
    points = coords.double().numpy()
    theta = np.deg2rad(points[:, 1] + 90)
    phi = np.deg2rad(points[:, 0] + 180)
    x = np.cos(theta)
    columns = []
    for degree in range(degrees):
        for order in range(-degree, degree + 1):
            size = abs(order)
            norm = math.sqrt(
                (2 * degree + 1)
                / (4 * math.pi)
                * math.factorial(degree - size)
                / math.factorial(degree + size)
            )
            legendre = norm * lpmv(size, degree, x)
            if order == 0:
                columns.append(legendre)
            elif order > 0:
                columns.append(math.sqrt(2) * legendre * np.cos(size * phi))
            else:
                columns.append(math.sqrt(2) * legendre * np.sin(size * phi))
    return np.stack(columns, axis=1)


def reference_siren(state: dict, prefix: str, features: np.ndarray) -> np.ndarray:
    """The reference SIREN (first sine w0 = 30, then w0 = 1, linear output)."""

    def weights(name: str) -> tuple[np.ndarray, np.ndarray]:
        return (
            state[f'{prefix}{name}.weight'].double().numpy(),
            state[f'{prefix}{name}.bias'].double().numpy(),
        )

    out = features
    index = 0
    while f'{prefix}layers.{index}.weight' in state:
        weight, bias = weights(f'layers.{index}')
        out = np.sin((30.0 if index == 0 else 1.0) * (out @ weight.T + bias))
        index += 1
    weight, bias = weights('last_layer')
    return out @ weight.T + bias


def test_the_reference_formula_has_the_condon_shortley_phase():
    # The test's reference relies on it: P_1^1(x) = -sqrt(1 - x^2).
    assert lpmv(1, 1, 0.6) == pytest.approx(-0.8)


def points_with_poles(count: int, seed: int) -> torch.Tensor:
    special = torch.tensor(
        [
            [0.0, 90.0],
            [77.7, 90.0],
            [-180.0, -90.0],
            [180.0, 90.0],
            [33.3, -90.0],
            [-180.0, 0.0],
            [180.0, 12.5],
            [0.0, 0.0],
        ],
        dtype=torch.float64,
    )
    return torch.cat([random_points(count, seed=seed, max_lat=90.0), special])


# ---------------------------------------------------------------- closed form


@pytest.mark.parametrize('degrees', [1, 4, 10])
def test_closed_form_checkpoint_matches_the_reference(tmp_path, degrees):
    model = torchgeo_model(degrees, seed=degrees, capacity=32, embed_dim=16)
    checkpoint = official_checkpoint(model, harmonics_calculation='closed-form')
    path = tmp_path / f'closed-form-l{degrees}.ckpt'
    torch.save(checkpoint, path)
    coords = points_with_poles(400, seed=degrees)
    expected = reference_siren(
        checkpoint['state_dict'],
        'model.location.nnet.',
        reference_closed_form_harmonics(coords, degrees),
    )
    encoder = load_location_encoder(path, dtype=torch.float64)
    with torch.no_grad():
        ours = encoder(coords).numpy()
        single = load_location_encoder(path)(coords).double().numpy()
        as_analytic = model(coords).numpy()
    assert np.abs(ours - expected).max() < 1e-6
    # float32 keeps its documented accuracy.
    assert np.abs(single - expected).max() < 2e-4
    # The weights read as analytic would be wrong: the mapping matters.
    assert np.abs(as_analytic - expected).max() > 1e-2
    info = get_pretrained_info(encoder)
    assert info.hyper_parameters['harmonics_calculation'] == 'closed-form'
    assert info.layout == 'satclip-official'


def test_load_satclip_maps_closed_form_too(tmp_path):
    model = torchgeo_model(4, seed=5, capacity=32)
    path = write_official(
        tmp_path / 'satclip-resnet18-l4.ckpt',
        model,
        visual=resnet18_visual(),
        harmonics_calculation='closed-form',
    )
    task = load_satclip(path)
    coords = points_with_poles(50, seed=2)
    with torch.no_grad():
        assert torch.equal(
            task.location_encoder(coords.float()),
            load_location_encoder(path)(coords.float()),
        )


@pytest.mark.parametrize('value', ['discretized', 'Closed-Form', 'spline', None])
def test_unsupported_harmonics_calculation_is_refused(tmp_path, value):
    model = torchgeo_model(4, capacity=16)
    checkpoint = official_checkpoint(model, harmonics_calculation=value)
    with pytest.raises(CheckpointError) as info:
        load_location_encoder(checkpoint)
    message = str(info.value)
    assert f'harmonics_calculation={value!r}' in message
    assert "'analytic'" in message and "'closed-form'" in message
    path = write_official(
        tmp_path / 'discretized.ckpt', model, harmonics_calculation=value
    )
    with pytest.raises(CheckpointError, match='harmonics_calculation='):
        load_satclip(path)


def test_missing_harmonics_calculation_means_analytic():
    model = torchgeo_model(4, seed=7, capacity=16)
    checkpoint = official_checkpoint(model)
    del checkpoint['hyper_parameters']['harmonics_calculation']
    encoder = load_location_encoder(checkpoint, dtype=torch.float64)
    coords = random_points(100)
    with torch.no_grad():
        assert (encoder(coords) - model(coords)).abs().max() < 1e-8


# ---------------------------------------------------------- non-finite weights


def corrupt(tensor: torch.Tensor) -> torch.Tensor:
    """A copy with three NaN and one inf."""
    bad = tensor.clone().reshape(-1)
    bad[:3] = float('nan')
    bad[-1] = float('-inf')
    return bad.reshape(tensor.shape)


def assert_names_the_bad_tensor(error: pytest.ExceptionInfo, key: str) -> None:
    message = str(error.value)
    assert key in message
    assert '4 non-finite values (3 NaN, 1 inf)' in message


def test_non_finite_official_checkpoint(tmp_path):
    model = torchgeo_model(4, capacity=16)
    checkpoint = official_checkpoint(model, visual=resnet18_visual())
    key = 'model.location.nnet.layers.1.weight'
    checkpoint['state_dict'][key] = corrupt(checkpoint['state_dict'][key])
    path = tmp_path / 'nan.ckpt'
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError) as error:
        load_location_encoder(path)
    assert_names_the_bad_tensor(error, key)
    with pytest.raises(CheckpointError) as error:
        load_satclip(path)
    assert_names_the_bad_tensor(error, key)


def test_non_finite_torchgeo_state_dict():
    state = dict(torchgeo_model(4, capacity=16).state_dict())
    state['nnet.last_layer.bias'] = corrupt(state['nnet.last_layer.bias'])
    with pytest.raises(CheckpointError) as error:
        load_location_encoder(state)
    assert_names_the_bad_tensor(error, 'nnet.last_layer.bias')


def tiny_encoder(**overrides):
    torch.manual_seed(0)
    arguments = {
        'embed_dim': 8,
        'positional_encoding_args': {'legendre_polys': 4},
        'network_args': {'hidden_dim': 16, 'num_hidden_layers': 1},
        **overrides,
    }
    encoding = arguments.pop('positional_encoding', 'sphericalharmonics')
    network = arguments.pop('network', 'siren')
    return build_location_encoder(encoding, network, **arguments)


def test_non_finite_task_layout():
    checkpoint = task_layout_checkpoint(tiny_encoder())
    key = 'location_encoder.network.layers.0.bias'
    checkpoint['state_dict'][key] = corrupt(checkpoint['state_dict'][key])
    with pytest.raises(CheckpointError) as error:
        load_location_encoder(checkpoint)
    assert_names_the_bad_tensor(error, key)


def lightning_task_checkpoint(task: SatCLIPTask, **hparam_overrides) -> dict:
    """A checkpoint dict as Lightning's Trainer.save_checkpoint lays it out."""
    checkpoint = {
        'epoch': 0,
        'global_step': 1,
        'pytorch-lightning_version': lightning.__version__,
        'state_dict': task.state_dict(),
        'hyper_parameters': {**dict(task.hparams), **hparam_overrides},
    }
    task.on_save_checkpoint(checkpoint)
    return checkpoint


def test_non_finite_task_checkpoint_in_load_satclip(tmp_path):
    torch.manual_seed(0)
    checkpoint = lightning_task_checkpoint(SatCLIPTask(**TINY_TASK))
    key = 'location_encoder.network.last_layer.weight'
    checkpoint['state_dict'][key] = corrupt(checkpoint['state_dict'][key])
    path = tmp_path / 'nan-task.ckpt'
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError) as error:
        load_satclip(path)
    assert_names_the_bad_tensor(error, key)


# ------------------------------------------------------------ crafted recipes


@pytest.fixture
def builds(monkeypatch) -> list[str]:
    """Record the device of every encoder build the loader starts.

    Fails the test if the loader builds spherical-harmonics tables for a large
    L (they are numpy arrays, which the meta device does not cover).
    """
    calls: list[str] = []
    real_build = pretrained_load.build_location_encoder
    real_tables = spherical_harmonics.Tables

    def build(*args, **kwargs):
        calls.append(torch.get_default_device().type)
        return real_build(*args, **kwargs)

    def tables(legendre_polys):
        if legendre_polys > 1000:
            pytest.fail(f'the loader built tables for L = {legendre_polys}')
        return real_tables(legendre_polys)

    monkeypatch.setattr(pretrained_load, 'build_location_encoder', build)
    monkeypatch.setattr(spherical_harmonics, 'Tables', tables)
    return calls


def refused_fast(source: object) -> str:
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as error:
        load_location_encoder(source)
    assert time.perf_counter() - start < 1.0
    return str(error.value)


@pytest.mark.parametrize(
    ('change', 'said', 'found'),
    [
        (
            {'positional_encoding_args': {'legendre_polys': 20000}},
            'legendre_polys=20000 means 400000000 harmonics',
            'values of all its tensors',
        ),
        (
            {'positional_encoding_args': {'legendre_polys': 5}},
            '25 features',
            'takes 16 inputs',
        ),
        (
            {'network_args': {'hidden_dim': 10**6, 'num_hidden_layers': 1}},
            'hidden_dim=1000000',
            'network.layers.0.weight is (16, 16)',
        ),
        (
            {'network_args': {'hidden_dim': 16, 'num_hidden_layers': 10**9}},
            'num_hidden_layers=1000000000',
            'the file has 1 sine layers',
        ),
        (
            {'embed_dim': 10**7},
            'embed_dim=10000000',
            'network.last_layer.weight is (8, 16)',
        ),
    ],
)
def test_crafted_recipe_is_refused_before_building(
    tmp_path, builds, change, said, found
):
    encoder = tiny_encoder()
    checkpoint = task_layout_checkpoint(encoder, {**encoder.config, **change})
    path = tmp_path / 'crafted.ckpt'
    torch.save(checkpoint, path)
    assert path.stat().st_size < 100_000
    message = refused_fast(path)
    assert str(path) in message
    assert said in message and found in message
    assert 'nothing was built' in message
    # Refused by arithmetic on the recipe: no module was built, not even one
    # on the meta device.
    assert builds == []


def test_crafted_recipe_of_other_components_is_refused(builds):
    # No arithmetic rule knows wrap + mlp: the shapes are compared on the
    # meta device, which allocates nothing.
    encoder = tiny_encoder(
        positional_encoding='wrap',
        positional_encoding_args={},
        network='mlp',
        network_args={'hidden_dim': 16, 'num_hidden_layers': 1},
    )
    crafted = {**encoder.config, 'network_args': {'hidden_dim': 10**6}}
    message = refused_fast(task_layout_checkpoint(encoder, crafted))
    assert '(16, 4), the recipe makes it (1000000, 4)' in message
    assert builds == ['meta']


class Lookup(PositionalEncoding):
    """A plugin encoding with a lookup table that is not saved."""

    def __init__(self, table_size: int = 16) -> None:
        super().__init__()
        self.embedding_dim = 2
        self.register_buffer('table', torch.empty(table_size), persistent=False)

    def encode(self, coords):
        return coords


def test_absurd_recipe_is_refused(monkeypatch, builds):
    registry = Registry(load_entry_points=False)
    monkeypatch.setattr('satclip_tg.location.api.get_registry', lambda: registry)

    @hookimpl
    def satclip_tg_positional_encodings():
        return {'lookup': Lookup}

    plugin = types.SimpleNamespace(
        satclip_tg_positional_encodings=satclip_tg_positional_encodings
    )
    registry.register(plugin, name='lookup-plugin')
    encoder = build_location_encoder('lookup', 'linear', embed_dim=8)
    # Loads with a sensible table...
    loaded = load_location_encoder(task_layout_checkpoint(encoder))
    assert loaded.config == encoder.config
    assert builds == ['meta', 'cpu']
    builds.clear()
    # ...and refuses one a billion entries long although every tensor fits.
    crafted = {**encoder.config, 'positional_encoding_args': {'table_size': 10**9}}
    message = refused_fast(task_layout_checkpoint(encoder, crafted))
    assert 'implies 1000000024 parameter and buffer values' in message
    assert 'the file holds 24' in message
    assert builds == ['meta']


def test_load_satclip_checks_the_task_recipe_first(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        pytest.fail('the task was built from a crafted recipe')

    monkeypatch.setattr(SatCLIPTask, 'load_from_checkpoint', fail)
    torch.manual_seed(0)
    checkpoint = lightning_task_checkpoint(
        SatCLIPTask(**TINY_TASK),
        network_args={'hidden_dim': 10**6, 'num_hidden_layers': 1},
    )
    path = tmp_path / 'crafted-task.ckpt'
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match='hidden_dim=1000000'):
        load_satclip(path)


def test_consistent_recipes_still_load(tmp_path: pathlib.Path):
    for overrides in (
        {},
        {'positional_encoding': 'theory', 'positional_encoding_args': {}},
        {'network': 'fcnet', 'network_args': {'hidden_dim': 8}},
    ):
        encoder = tiny_encoder(**overrides).eval()
        loaded = load_location_encoder(task_layout_checkpoint(encoder))
        coords = random_points(20).float()
        with torch.no_grad():
            assert torch.equal(loaded(coords), encoder(coords))
