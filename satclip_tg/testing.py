"""Conformance checks that every encoding, network and encoder must pass.

Plugin authors call these from their own tests; satclip-tg runs them over
every built-in. Each check raises `AssertionError` with a message that
says which property failed. A plugin's whole test file can be::

    from satclip_tg.testing import check_positional_encoding
    from my_plugin import MyEncoding

    def test_conformance() -> None:
        check_positional_encoding(MyEncoding(scale=2.0))

Image backbones have `check_image_backbone`, downstream tasks
`check_downstream_task`, and `check_plugin` registers a whole plugin in a fresh
registry and runs the right check on every component it provides.
"""

import copy
import functools
import io
import warnings
from collections.abc import Callable, Collection, Mapping
from typing import Any, cast

import numpy as np
import pluggy
import torch
from torch import Tensor, nn

from .geodesy import area_uniform_lonlat
from .location.api import build_location_encoder
from .location.coordinates import validate_coordinates
from .location.encoder import LocationEncoder
from .plugins import (
    HOOK_API_VERSION,
    Component,
    ComponentConflictError,
    PluginWarning,
    Registry,
)

__all__ = [
    'DOWNSTREAM_TASK_TYPES',
    'check_downstream_task',
    'check_image_backbone',
    'check_location_encoder',
    'check_network',
    'check_plugin',
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
    u_lon = torch.rand(n, generator=generator, dtype=torch.float64)
    u_lat = torch.rand(n, generator=generator, dtype=torch.float64)
    # Area-uniform latitudes so that polar regions are represented fairly.
    lon, lat = area_uniform_lonlat(u_lon, u_lat)
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


def _modules_allowed_to_train(module: nn.Module) -> set[str]:
    # A module may be in training mode when its subtree holds a trainable
    # parameter (the projection and the containers around it), or when it lies
    # inside a module whose parameters all train (a dropout inside the head).
    allowed: set[str] = set()
    for name, submodule in module.named_modules():
        parameters = list(submodule.parameters())
        if any(parameter.requires_grad for parameter in parameters):
            allowed.add(name)
        if parameters and all(parameter.requires_grad for parameter in parameters):
            allowed.update(
                f'{name}.{child}' if name else child
                for child, _ in submodule.named_modules()
                if child
            )
    return allowed


def check_image_backbone(
    factory: Callable[..., nn.Module],
    in_channels: int = 13,
    num_outputs: int = 8,
    image_size: int = 32,
    backbone_args: Mapping[str, Any] | None = None,
) -> None:
    """Check that an image backbone factory honours the contract.

    The factory is called as the pretraining task calls it:
    ``factory(in_channels, num_outputs, weights=None, freeze=..., **backbone_args)``.
    Checked, with ``freeze=True``:

    * some parameters train and some do not; when the backbone has a
      ``projection`` attribute (a module), exactly its parameters train;
    * after ``.train()``, every module outside the trainable part is in eval
      mode (a module may train only if it holds a trainable parameter, contains
      one, or lies inside a module whose parameters all train);
    * a ``(2, in_channels, image_size, image_size)`` batch gives a finite,
      floating ``(2, num_outputs)`` output, and a forward pass in training
      mode leaves the buffers of the frozen part (BatchNorm statistics)
      unchanged;
    * every trainable parameter receives a finite gradient;
    * in eval mode the output is deterministic, and the ``state_dict`` loads
      into a freshly built backbone (another seed), which then gives
      bit-identical output.

    With ``freeze=False``: every parameter trains and ``.train()`` puts every
    module in training mode.

    A training-free backbone (such as ``mosaiks``: drawn filters kept as
    buffers, only the projection has parameters) sets the attribute
    ``training_free = True``. Then its frozen part may consist of buffers
    alone, and ``freeze=False`` must be refused with a ``ValueError``.

    Args:
        factory: The registered factory (e.g. ``timm_backbone('resnet18')``).
        in_channels: Number of image bands used for the check.
        num_outputs: Embedding size used for the check.
        image_size: Height and width of the test images; small images keep the
            check fast, but the backbone must accept them.
        backbone_args: Further keyword arguments of the factory (the
            ``model_args`` of the pretraining task).

    Raises:
        AssertionError: Describing the first property that fails.
    """
    args = dict(backbone_args or {})
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(2, in_channels, image_size, image_size, generator=generator)

    torch.manual_seed(0)
    backbone = factory(in_channels, num_outputs, weights=None, freeze=True, **args)
    name = type(backbone).__name__
    parameters = dict(backbone.named_parameters())
    trainable = {
        key for key, parameter in parameters.items() if parameter.requires_grad
    }
    if not trainable:
        raise AssertionError(
            f'{name}: with freeze=True no parameter trains; the projection must'
        )
    training_free = bool(getattr(backbone, 'training_free', False))
    if trainable == set(parameters) and not training_free:
        raise AssertionError(
            f'{name}: with freeze=True every parameter trains; only the projection may'
        )
    projection = getattr(backbone, 'projection', None)
    if isinstance(projection, nn.Module):
        in_projection = {id(parameter) for parameter in projection.parameters()}
        wrong = sorted(
            key
            for key, parameter in parameters.items()
            if parameter.requires_grad != (id(parameter) in in_projection)
        )
        if wrong:
            raise AssertionError(
                f'{name}: with freeze=True exactly the parameters of .projection '
                f'must train; these do not follow that rule: {wrong[:5]}'
            )

    backbone.train()
    allowed = _modules_allowed_to_train(backbone)
    training = sorted(
        key
        for key, module in backbone.named_modules()
        if module.training and key not in allowed
    )
    if training:
        raise AssertionError(
            f'{name}: with freeze=True the frozen part must stay in eval mode '
            f'after .train(), but these modules are in training mode: {training[:5]}'
        )
    frozen_buffers = {
        key: buffer.clone()
        for key, buffer in backbone.named_buffers()
        if key.rpartition('.')[0] not in allowed
    }
    out = backbone(images)
    if out.shape != (2, num_outputs):
        raise AssertionError(
            f'{name}: expected output shape {(2, num_outputs)}, got {tuple(out.shape)}'
        )
    if not out.is_floating_point():
        raise AssertionError(f'{name}: output dtype {out.dtype} is not floating')
    _assert_finite(out, f'{name} output')
    for key, before in frozen_buffers.items():
        if not torch.equal(before, backbone.get_buffer(key)):
            raise AssertionError(
                f'{name}: buffer {key} of the frozen part changed during a '
                f'forward pass in training mode (BatchNorm statistics?)'
            )
    out.square().sum().backward()  # type: ignore[no-untyped-call]
    for key in sorted(trainable):
        grad = parameters[key].grad
        if grad is None:
            raise AssertionError(f'{name}: trainable parameter {key} got no gradient')
        _assert_finite(grad, f'{name} gradient of {key}')

    backbone.eval()
    with torch.no_grad():
        first = backbone(images)
        _assert_close(
            backbone(images), first, 0.0, f'{name} is not deterministic in eval mode'
        )
        torch.manual_seed(1)
        fresh = factory(in_channels, num_outputs, weights=None, freeze=True, **args)
        restored = _round_trip(backbone, fresh).eval()
        _assert_close(restored(images), first, 0.0, f'{name}: state_dict round trip')

    if training_free:
        try:
            factory(in_channels, num_outputs, weights=None, freeze=False, **args)
        except ValueError:
            return
        raise AssertionError(
            f'{name} is training_free, so freeze=False must raise ValueError'
        )
    torch.manual_seed(0)
    unfrozen = factory(in_channels, num_outputs, weights=None, freeze=False, **args)
    frozen = [key for key, p in unfrozen.named_parameters() if not p.requires_grad]
    if frozen:
        raise AssertionError(
            f'{name}: with freeze=False every parameter must train, but these do '
            f'not: {frozen[:5]}'
        )
    unfrozen.train()
    idle = [key for key, module in unfrozen.named_modules() if not module.training]
    if idle:
        raise AssertionError(
            f'{name}: with freeze=False .train() must put every module in '
            f'training mode, but these stay in eval mode: {idle[:5]}'
        )
    out = unfrozen(images)
    if out.shape != (2, num_outputs):
        raise AssertionError(
            f'{name} (freeze=False): expected output shape {(2, num_outputs)}, '
            f'got {tuple(out.shape)}'
        )


#: The values a downstream task's ``task_type`` may take.
DOWNSTREAM_TASK_TYPES = ('regression', 'classification')


def _load_task(
    load: Callable[..., Any], num_points: int, seed: int, name: str
) -> tuple[Tensor, Tensor]:
    loaded = load(num_points=num_points, seed=seed)
    if not (
        isinstance(loaded, tuple)
        and len(loaded) == 2
        and all(isinstance(part, Tensor | np.ndarray) for part in loaded)
    ):
        raise AssertionError(
            f'{name}.load must return a tuple (coords, labels) of two arrays '
            f'(NumPy arrays or tensors), got {type(loaded).__name__}'
        )
    return torch.as_tensor(loaded[0]), torch.as_tensor(loaded[1])


def check_downstream_task(task: Any, num_points: int = 32, seed: int = 0) -> None:
    """Check that a downstream task object honours the contract.

    The contract (see the `satclip_tg_downstream_tasks` hook) is:

    * ``task_type``: ``'regression'`` or ``'classification'``;
    * ``num_classes``: the number of classes (an ``int`` of at least 2) for
      classification, ``None`` for regression;
    * ``load(num_points, seed)``: returns ``(coords, labels)``, two arrays
      (NumPy arrays or torch tensors): ``coords`` of shape ``(n, 2)``, float64,
      valid (lon, lat) degrees, with ``1 <= n <= num_points``; ``labels`` of
      shape ``(n,)``, float64 and finite for regression, int64 in
      ``[0, num_classes)`` for classification; the same ``seed`` gives the
      same result.

    An exception raised by ``load`` (e.g. for a missing data package) is not
    caught, so the caller can skip the check.

    Args:
        task: The object a downstream-task factory returned.
        num_points: Number of points to ask for.
        seed: Seed to load them with.

    Raises:
        AssertionError: Describing the first property that fails.
    """
    name = type(task).__name__
    task_type = getattr(task, 'task_type', None)
    if task_type not in DOWNSTREAM_TASK_TYPES:
        raise AssertionError(
            f'{name}.task_type must be one of {DOWNSTREAM_TASK_TYPES}, '
            f'got {task_type!r}'
        )
    num_classes = getattr(task, 'num_classes', None)
    if task_type == 'classification' and (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, int)
        or num_classes < 2
    ):
        raise AssertionError(
            f'{name}.num_classes must be an int >= 2 for classification, '
            f'got {num_classes!r}'
        )
    if task_type == 'regression' and num_classes is not None:
        raise AssertionError(
            f'{name}.num_classes must be None for regression, got {num_classes!r}'
        )
    load = getattr(task, 'load', None)
    if not callable(load):
        raise AssertionError(f'{name} has no load(num_points, seed) method')

    coords, labels = _load_task(load, num_points, seed, name)
    if coords.dtype != torch.float64 or coords.ndim != 2 or coords.shape[1] != 2:
        raise AssertionError(
            f'{name}.load: coords must be an (n, 2) float64 array, got '
            f'{tuple(coords.shape)} {coords.dtype}'
        )
    n = coords.shape[0]
    if not 1 <= n <= num_points:
        raise AssertionError(
            f'{name}.load: asked for {num_points} points, got {n} '
            f'(at least 1, at most num_points)'
        )
    try:
        validate_coordinates(coords)
    except ValueError as error:
        raise AssertionError(
            f'{name}.load returned invalid coordinates: {error}'
        ) from None
    if labels.shape != (n,):
        raise AssertionError(
            f'{name}.load: labels must have shape {(n,)}, got {tuple(labels.shape)}'
        )
    if task_type == 'regression':
        if labels.dtype != torch.float64:
            raise AssertionError(
                f'{name}.load: regression labels must be float64, got {labels.dtype}'
            )
        _assert_finite(labels, f'{name} labels')
    else:
        if labels.dtype != torch.int64:
            raise AssertionError(
                f'{name}.load: class labels must be int64, got {labels.dtype}'
            )
        classes = cast(int, num_classes)
        if bool(((labels < 0) | (labels >= classes)).any()):
            raise AssertionError(
                f'{name}.load: class labels must lie in [0, {classes}), got '
                f'values from {int(labels.min())} to {int(labels.max())}'
            )
    again = _load_task(load, num_points, seed, name)
    if not (torch.equal(again[0], coords) and torch.equal(again[1], labels)):
        raise AssertionError(f'{name}.load is not deterministic for a fixed seed')


def _check_component(component: Component, arguments: dict[str, Any]) -> None:
    factory = component.factory
    if component.kind == 'positional_encoding':
        check_positional_encoding(factory(**arguments))
    elif component.kind == 'network':
        check_network(functools.partial(factory, **arguments))
    elif component.kind == 'image_backbone':
        check_image_backbone(factory, backbone_args=arguments)
    else:
        check_downstream_task(factory(**arguments))


def check_plugin(
    plugin: object,
    arguments: Mapping[str, Mapping[str, Any]] | None = None,
    only: Collection[str] | None = None,
) -> list[Component]:
    """Register a plugin in a fresh registry and check every component it provides.

    Checked: the plugin declares ``SATCLIP_TG_HOOK_API`` equal to the current
    `HOOK_API_VERSION`; it implements only hooks of the contract (no typos);
    its hooks run without error and return mappings; it provides at least one
    component; no name clashes with a built-in; and each component passes the
    check of its kind: `check_positional_encoding` on ``factory(**args)``,
    `check_network` on ``functools.partial(factory, **args)``,
    `check_image_backbone` with ``backbone_args=args``, and
    `check_downstream_task` on ``factory(**args)``, where ``args`` is
    ``arguments.get(name, {})``.

    Args:
        plugin: The plugin object, usually the module named by the entry point.
        arguments: Keyword arguments per component name, for components that
            need some or to keep the check small.
        only: Names of the components to check; the others are only
            collected. ``None`` checks all.

    Returns:
        The components the plugin provides, sorted by kind, then name.

    Raises:
        AssertionError: Describing the first property that fails.
    """
    declared = getattr(plugin, 'SATCLIP_TG_HOOK_API', None)
    if declared != HOOK_API_VERSION:
        raise AssertionError(
            f'the plugin must declare SATCLIP_TG_HOOK_API = {HOOK_API_VERSION}, '
            f'the hook contract version it is written against; found {declared!r}'
        )
    plugin_name = 'plugin_under_test'
    registry = Registry(load_entry_points=False)
    registry.register(plugin, name=plugin_name)
    try:
        registry.plugin_manager.check_pending()
    except pluggy.PluginValidationError as error:
        raise AssertionError(
            f'the plugin implements an unknown hook: {error}'
        ) from None
    with warnings.catch_warnings():
        warnings.simplefilter('error', PluginWarning)
        try:
            components = [
                component
                for component in registry.components()
                if component.plugin == plugin_name
            ]
        except (PluginWarning, ComponentConflictError) as error:
            raise AssertionError(str(error)) from None
    if not components:
        raise AssertionError('the plugin provides no components')
    names = {component.name for component in components}
    for label, given in (('arguments', arguments or {}), ('only', only or ())):
        unknown = sorted(set(given) - names)
        if unknown:
            raise AssertionError(
                f'{label} names components the plugin does not provide: {unknown}; '
                f'it provides {sorted(names)}'
            )
    for component in components:
        if only is not None and component.name not in only:
            continue
        try:
            _check_component(component, dict((arguments or {}).get(component.name, {})))
        except AssertionError as error:
            raise AssertionError(
                f'{component.kind} {component.name!r}: {error}'
            ) from None
    return components
