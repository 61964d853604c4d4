"""Conformance checks that every encoding, network and encoder must pass.

Plugin authors call these from their own tests; satclip-tg runs them over
every built-in. Each check raises `AssertionError` with a message that
says which property failed. A plugin's whole test file can be::

    from satclip_tg.testing import check_positional_encoding
    from my_plugin import MyEncoding

    def test_conformance() -> None:
        check_positional_encoding(MyEncoding(scale=2.0))
"""

import copy
import io
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .location.encoder import LocationEncoder, build_location_encoder

__all__ = [
    'check_location_encoder',
    'check_network',
    'check_positional_encoding',
    'sample_coordinates',
]


def sample_coordinates(
    n: int = 64, seed: int = 0, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Coordinates that exercise the edge cases, plus random points.

    Args:
        n: Number of random points added to the fixed edge cases.
        seed: Seed of the random points.
        dtype: Floating-point dtype of the result.

    Returns:
        ``(n + 10, 2)`` tensor of (lon, lat) in degrees, including both poles,
        the equator, the prime meridian and both sides of the antimeridian.
    """
    generator = torch.Generator().manual_seed(seed)
    fixed = torch.tensor(
        [
            [0.0, 0.0],
            [-180.0, 0.0],
            [180.0, 0.0],
            [0.0, 90.0],
            [0.0, -90.0],
            [-180.0, 90.0],
            [180.0, -90.0],
            [179.999, 45.0],
            [-179.999, -45.0],
            [12.5, 89.999],
        ],
        dtype=torch.float64,
    )
    lon = torch.rand(n, generator=generator, dtype=torch.float64) * 360 - 180
    # Area-uniform latitudes so that polar regions are represented fairly.
    lat = torch.rad2deg(
        torch.asin(torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1)
    )
    return torch.cat([fixed, torch.stack([lon, lat], dim=1)]).to(dtype)


def _assert_finite(tensor: Tensor, what: str) -> None:
    bad = ~torch.isfinite(tensor)
    if bool(bad.any()):
        rows = bad.reshape(bad.shape[0], -1).any(dim=1).nonzero().flatten().tolist()
        raise AssertionError(f'{what} has non-finite values in rows {rows[:5]}')


def _assert_close(actual: Tensor, expected: Tensor, atol: float, what: str) -> None:
    error = (actual.double() - expected.double()).abs().max().item()
    if not error <= atol:
        raise AssertionError(f'{what}: max abs difference {error:.3g} > {atol:.3g}')


def _round_trip(module: nn.Module, fresh: nn.Module) -> nn.Module:
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh.load_state_dict(state)
    return fresh


def _check_coordinate_function(
    function: Callable[[Tensor], Tensor],
    out_dim: int,
    periodic_in_longitude: bool,
    pole_invariant: bool,
    atol: float,
    what: str,
) -> None:
    for dtype in (torch.float32, torch.float64):
        coords = sample_coordinates(dtype=dtype)
        out = function(coords)
        if out.shape != (coords.shape[0], out_dim):
            raise AssertionError(
                f'{what}: expected output shape {(coords.shape[0], out_dim)}, '
                f'got {tuple(out.shape)}'
            )
        if not out.is_floating_point():
            raise AssertionError(f'{what}: output dtype {out.dtype} is not floating')
        _assert_finite(out, f'{what} output ({dtype})')
        _assert_close(function(coords), out, 0.0, f'{what} is not deterministic')

    coords = sample_coordinates(dtype=torch.float64)
    # One row at a time must give the same as the batch: no cross-row mixing.
    single = torch.cat([function(coords[i : i + 1]) for i in range(4)])
    _assert_close(single, function(coords)[:4], atol, f'{what}: batch dependence')

    lat = torch.linspace(-89.0, 89.0, 9, dtype=torch.float64)
    west = torch.stack([torch.full_like(lat, -180.0), lat], dim=1)
    east = torch.stack([torch.full_like(lat, 180.0), lat], dim=1)
    if periodic_in_longitude:
        _assert_close(
            function(west),
            function(east),
            atol,
            f'{what} claims periodic_in_longitude but lon=-180 and lon=180 differ',
        )
    if pole_invariant:
        lon = torch.linspace(-180.0, 180.0, 13, dtype=torch.float64)
        for pole in (90.0, -90.0):
            out = function(torch.stack([lon, torch.full_like(lon, pole)], dim=1))
            _assert_close(
                out,
                out[:1].expand_as(out),
                atol,
                f'{what} claims pole_invariant but differs along lat={pole}',
            )

    grad_coords = coords.clone().requires_grad_(True)
    function(grad_coords).square().sum().backward()  # type: ignore[no-untyped-call]
    if grad_coords.grad is None:
        raise AssertionError(f'{what}: no gradient reached the coordinates')
    _assert_finite(grad_coords.grad, f'{what} coordinate gradient')

    for bad, label in (
        (torch.tensor([[0.0, float('nan')]]), 'NaN'),
        (torch.tensor([[0.0, 91.0]]), 'lat=91'),
        (torch.tensor([[181.0, 0.0]]), 'lon=181'),
    ):
        try:
            function(bad)
        except ValueError:
            continue
        raise AssertionError(f'{what} accepted an invalid coordinate ({label})')


def check_positional_encoding(encoding: nn.Module, atol: float = 1e-5) -> None:
    """Check that a positional encoding honours the contract.

    Checked: a positive integer ``embedding_dim``; output shape and floating
    dtype for float32 and float64 input; finite values on poles and the
    antimeridian; determinism; no dependence between rows; the longitude
    periodicity and pole invariance the class claims; finite gradients with
    respect to the coordinates; rejection of invalid coordinates; and a
    ``state_dict`` round trip.

    Args:
        encoding: The encoding to check.
        atol: Tolerance for the geometric properties.

    Raises:
        AssertionError: Describing the first property that fails.
    """
    name = type(encoding).__name__
    dim = getattr(encoding, 'embedding_dim', None)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise AssertionError(
            f'{name}.embedding_dim must be a positive int, got {dim!r}'
        )
    _check_coordinate_function(
        encoding,
        dim,
        bool(getattr(encoding, 'periodic_in_longitude', False)),
        bool(getattr(encoding, 'pole_invariant', False)),
        atol,
        name,
    )
    coords = sample_coordinates()
    restored = _round_trip(encoding, copy.deepcopy(encoding))
    _assert_close(
        restored(coords), encoding(coords), 0.0, f'{name}: state_dict round trip'
    )


def check_network(
    factory: Callable[..., nn.Module], dim_in: int = 16, dim_out: int = 8
) -> None:
    """Check that a location network factory honours the contract.

    Checked: ``factory(dim_in, dim_out)`` maps ``(N, dim_in)`` to
    ``(N, dim_out)``; is deterministic in eval mode; passes finite gradients to
    every parameter and its input; and survives a ``state_dict`` round trip
    into a freshly built instance.

    Args:
        factory: Called as ``factory(dim_in, dim_out)`` (e.g. the class).
        dim_in: Input size used for the check.
        dim_out: Output size used for the check.

    Raises:
        AssertionError: Describing the first property that fails.
    """
    torch.manual_seed(0)
    network = factory(dim_in, dim_out)
    name = type(network).__name__
    features = torch.randn(32, dim_in, requires_grad=True)
    network.train()
    out = network(features)
    if out.shape != (32, dim_out):
        raise AssertionError(
            f'{name}: expected shape {(32, dim_out)}, got {tuple(out.shape)}'
        )
    out.square().sum().backward()  # type: ignore[no-untyped-call]
    for parameter_name, parameter in network.named_parameters():
        if parameter.grad is None:
            raise AssertionError(f'{name}: parameter {parameter_name} got no gradient')
        _assert_finite(parameter.grad, f'{name} gradient of {parameter_name}')
    if features.grad is None:
        raise AssertionError(f'{name}: no gradient reached the input')
    network.eval()
    with torch.no_grad():
        first = network(features)
        _assert_close(
            network(features), first, 0.0, f'{name} is not deterministic in eval mode'
        )
        restored = _round_trip(network, factory(dim_in, dim_out)).eval()
        _assert_close(restored(features), first, 0.0, f'{name}: state_dict round trip')


def check_location_encoder(encoder: LocationEncoder, atol: float = 1e-4) -> None:
    """Check that a location encoder honours the contract.

    Checked, in eval mode: output ``(N, embed_dim)``; finite values and
    gradients (to the coordinates and every parameter); determinism; the
    periodicity and pole invariance its positional encoding claims; rejection
    of invalid coordinates; and, when the encoder records its recipe in
    ``config``, a ``state_dict`` round trip into an encoder rebuilt from it.

    Args:
        encoder: The encoder to check.
        atol: Tolerance for the geometric properties.

    Raises:
        AssertionError: Describing the first property that fails.
    """
    encoder.eval()
    encoding = encoder.positional_encoding
    coords = sample_coordinates()
    out = encoder(coords)
    dim = out.shape[1]
    if encoder.embed_dim is not None and dim != encoder.embed_dim:
        raise AssertionError(
            f'output has {dim} features, config says {encoder.embed_dim}'
        )
    _check_coordinate_function(
        encoder,
        dim,
        bool(getattr(encoding, 'periodic_in_longitude', False)),
        bool(getattr(encoding, 'pole_invariant', False)),
        atol,
        'LocationEncoder',
    )
    encoder.zero_grad()
    encoder(coords).square().sum().backward()  # type: ignore[no-untyped-call]
    for parameter_name, parameter in encoder.named_parameters():
        if parameter.grad is not None:
            _assert_finite(parameter.grad, f'gradient of {parameter_name}')
    if encoder.config is not None:
        rebuilt = _round_trip(encoder, build_location_encoder(**encoder.config)).eval()
        with torch.no_grad():
            _assert_close(
                rebuilt(coords), encoder(coords), 0.0, 'state_dict round trip'
            )
