"""Location encoders to benchmark: baselines, registered encodings, checkpoints.

An encoder specification (``--encoders`` on the command line) is one of:

* a baseline: ``lonlat`` (raw (lon, lat) degrees), ``wrap``, ``sh`` (the
  $L = 10$ spherical-harmonic features of SatCLIP without a network),
  ``satclip-random`` (SatCLIP's $L = 10$ SIREN encoder, randomly initialised,
  seeded) and ``geoclip`` (GeoCLIP's pretrained location encoder);
* a registered positional encoding name, e.g. ``theory`` (its features, with
  default hyperparameters);
* ``ENCODING+NETWORK``, e.g. ``spherec+siren``: a randomly initialised encoder
  from registered components (256-d);
* a checkpoint path or anything else `satclip_tg.pretrained.load_location_encoder`
  accepts (our `SatCLIPTask` checkpoints, official SatCLIP checkpoints, a
  Hugging Face id);
* a registered encoding or ``ENCODING+NETWORK`` followed by
  ``:KEY=VALUE,KEY=VALUE`` to set hyperparameters, e.g.
  ``spherec:frequency_num=32`` or
  ``theory+siren:frequency_num=32,network.hidden_dim=128``;
  values are read as YAML scalars (``32``, ``0.5``, ``true``, ``text``), keys go
  to the positional encoding, or with a ``network.`` prefix to the network;
* any of these prefixed by ``LABEL=`` to name it in the report, e.g.
  ``demo=runs/demo-1/last.ckpt``.

A checkpoint's architecture can be rebuilt with random weights
(`random_init_encoder`): `run_benchmark` adds such a companion,
``NAME (random init)``, beside every checkpoint by default, so that the report
shows whether pretraining adds anything to the architecture alone.
"""

import hashlib
import math
import pathlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import yaml
from numpy.typing import NDArray
from torch import Tensor, nn

from ..datasets.downstream.sources import SOURCES, DataUnavailableError
from ..location.api import build_location_encoder, get_positional_encoding
from ..location.encoder import LocationEncoder, encoder_dtype
from ..plugins import get_registry

__all__ = [
    'BASELINES',
    'RANDOM_INIT_SUFFIX',
    'BenchmarkEncoder',
    'GeoCLIPLocationEncoder',
    'load_checkpoint_encoder',
    'random_init_encoder',
    'random_init_name',
    'resolve_encoder',
]

#: The baselines that are always part of a benchmark run.
BASELINES = ('lonlat', 'wrap', 'sh', 'satclip-random', 'geoclip')

#: Appended to a pretrained encoder's name to name its random-init companion.
RANDOM_INIT_SUFFIX = ' (random init)'

#: Maps ``(N, 2)`` float64 (lon, lat) degrees to ``(N, d)`` features.
Embedder = Callable[[NDArray[np.float64]], NDArray[np.float64]]


@dataclass
class BenchmarkEncoder:
    """A named coordinate-to-feature map.

    Attributes:
        name: Label in the report.
        description: What it is.
        embed: Maps ``(N, 2)`` float64 (lon, lat) degrees to ``(N, d)`` features
            (for an encoder averaged over seeds: the first seed's).
        info: Provenance for the run manifest.
        pretrained: The location encoder loaded from a checkpoint, when there
            is one: its architecture is what `random_init_encoder` rebuilds.
        seed_embeddings: For an encoder averaged over random initialisations,
            the embedding of each seed; `run_benchmark` evaluates every seed
            and reports the mean. Empty for all other encoders.
    """

    name: str
    description: str
    embed: Embedder
    info: dict[str, str] = field(default_factory=dict)
    pretrained: nn.Module | None = None
    seed_embeddings: dict[int, Embedder] = field(default_factory=dict)


def _module_embedder(module: nn.Module, batch_size: int = 8192) -> Embedder:
    module = module.eval()
    dtype = encoder_dtype(module, default=torch.float64)

    def embed(coords: NDArray[np.float64]) -> NDArray[np.float64]:
        outputs = []
        with torch.no_grad():
            for first in range(0, len(coords), batch_size):
                batch = torch.as_tensor(coords[first : first + batch_size], dtype=dtype)
                outputs.append(module(batch).double().numpy())
        if not outputs:
            return np.zeros((0, 0))
        return np.concatenate(outputs)

    return embed


def _satclip_random(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_location_encoder(
        'sphericalharmonics',
        'siren',
        embed_dim=256,
        positional_encoding_args={'legendre_polys': 10},
        network_args={'hidden_dim': 512, 'num_hidden_layers': 2},
    )


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with path.open('rb') as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def load_checkpoint_encoder(source: str) -> nn.Module:
    """Load a location encoder from a checkpoint path or model id.

    Uses `satclip_tg.pretrained.load_location_encoder`, which understands our
    `SatCLIPTask` checkpoints, the official ones and Hugging Face ids, and
    reads only the location-encoder tensors, never an image backbone.

    Args:
        source: The checkpoint path or id.

    Returns:
        The encoder in eval mode.

    Raises:
        FileNotFoundError: If ``source`` is neither a file nor loadable.
    """
    from ..pretrained import load_location_encoder

    encoder: nn.Module = load_location_encoder(source)
    return encoder.eval()


def random_init_name(name: str) -> str:
    """The report name of the random-init companion of an encoder.

    Args:
        name: The pretrained encoder's name.

    Returns:
        ``name`` followed by `RANDOM_INIT_SUFFIX`.
    """
    return f'{name}{RANDOM_INIT_SUFFIX}'


def _recipe_of(encoder: nn.Module) -> Mapping[str, Any]:
    config = getattr(encoder, 'config', None)
    if not isinstance(config, Mapping) or not {'positional_encoding', 'network'} <= set(
        config
    ):
        raise ValueError(
            f'{type(encoder).__name__} records no recipe to rebuild it from: a '
            f'random-init companion needs a LocationEncoder built by '
            f'build_location_encoder (as load_location_encoder returns), whose '
            f'config names the positional encoding and network'
        )
    return config


def _rebuild_seeded(recipe: Mapping[str, Any], seed: int) -> LocationEncoder:
    # A forked RNG keeps the caller's global torch state untouched, so adding
    # the companion does not shift the draws of anything evaluated after it.
    # Only the CPU generator is seeded: encoders are built on the CPU.
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return build_location_encoder(
            recipe['positional_encoding'],
            recipe['network'],
            embed_dim=recipe.get('embed_dim', 256),
            positional_encoding_args=recipe.get('positional_encoding_args'),
            network_args=recipe.get('network_args'),
        )


def random_init_encoder(
    encoder: nn.Module,
    seeds: Sequence[int],
    *,
    name: str = 'random init',
) -> BenchmarkEncoder:
    """The architecture of a location encoder with random weights, one per seed.

    Each seed rebuilds the encoder from its recipe (`LocationEncoder.config`,
    which every encoder returned by `load_location_encoder` has) with the torch
    generator seeded by that seed, so the weights are the registered network's
    own initialisation, as before any training. The parameter dtype follows
    ``encoder``'s. Building is deterministic per seed and leaves the global
    torch random state as it was.

    `run_benchmark` evaluates every seed with the same folds and probe seed as
    the pretrained encoder and averages the metrics over the seeds.

    Example::

        from satclip_tg.pretrained import load_location_encoder

        pretrained = load_location_encoder('runs/demo-1/last.ckpt')
        baseline = random_init_encoder(pretrained, [0, 1, 2], name='demo (random init)')
        features = baseline.seed_embeddings[1](coords)  # (N, embed_dim)

    Args:
        encoder: The (pretrained) location encoder whose architecture to copy.
        seeds: Seeds of the initialisations, at least one.
        name: Label in the report.

    Returns:
        The encoder: ``seed_embeddings`` maps each seed to its embedding, and
        ``embed`` is the first seed's.

    Raises:
        ValueError: If ``seeds`` is empty or repeats a seed, or ``encoder``
            records no recipe.
    """
    init_seeds = [int(seed) for seed in seeds]
    if not init_seeds or len(set(init_seeds)) != len(init_seeds):
        raise ValueError(f'seeds must be distinct and at least one, got {init_seeds}')
    recipe = _recipe_of(encoder)
    dtype = encoder_dtype(encoder, default=torch.float32)
    embeddings = {
        seed: _module_embedder(_rebuild_seeded(recipe, seed).to(dtype))
        for seed in init_seeds
    }
    seed_list = ', '.join(str(seed) for seed in init_seeds)
    return BenchmarkEncoder(
        name,
        f'{recipe["positional_encoding"]} + {recipe["network"]} '
        f'(embed_dim {recipe.get("embed_dim")}), random initialisation, metrics '
        f'averaged over seeds {seed_list}',
        embeddings[init_seeds[0]],
        {'seeds': seed_list, 'recipe': repr(dict(recipe))},
        seed_embeddings=embeddings,
    )


# GeoCLIP's Equal Earth projection constants (Savric et al. 2018).
_A1, _A2, _A3, _A4 = 1.340264, -0.081106, 0.000893, 0.003796
_SCALE = 66.50336


class _RandomFourierFeatures(nn.Module):
    def __init__(self, sigma: float, encoded_size: int = 256) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.randn(encoded_size, 2) * sigma, requires_grad=False)

    def forward(self, v: Tensor) -> Tensor:
        projected = 2 * math.pi * v @ self.b.T
        return torch.cat([torch.cos(projected), torch.sin(projected)], dim=-1)


class _GeoCLIPBranch(nn.Module):
    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.capsule = nn.Sequential(
            _RandomFourierFeatures(sigma),
            nn.Linear(512, 1024),
            nn.ReLU(),
            nn.Linear(1024, 1024),
            nn.ReLU(),
            nn.Linear(1024, 1024),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Linear(1024, 512))

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.head(self.capsule(x))
        return out


class GeoCLIPLocationEncoder(nn.Module):
    r"""GeoCLIP's location encoder (Vivanco Cepeda et al., NeurIPS 2023).

    Equal Earth projection of (lat, lon), scaled to about $[-1, 1]$, then three
    random-Fourier-feature branches ($\sigma = 2^0, 2^4, 2^8$) with MLPs,
    summed: a 512-d embedding. The parameter names match GeoCLIP's
    ``location_encoder_weights.pth`` so that its weights load directly.

    `forward` takes satclip-tg's **(lon, lat)** order and swaps it to GeoCLIP's
    (lat, lon) internally.

    If you use this encoder, please cite:

    * https://arxiv.org/abs/2309.16020
    """

    def __init__(self, sigmas: tuple[float, ...] = (2**0, 2**4, 2**8)) -> None:
        """Initialize with random weights (use `from_weights` for GeoCLIP's).

        Args:
            sigmas: Scales of the random Fourier feature branches.
        """
        super().__init__()
        self.sigmas = sigmas
        for i, sigma in enumerate(sigmas):
            self.add_module(f'LocEnc{i}', _GeoCLIPBranch(sigma))

    @classmethod
    def from_weights(cls, path: str | pathlib.Path) -> 'GeoCLIPLocationEncoder':
        """Load GeoCLIP's ``location_encoder_weights.pth``.

        Args:
            path: The weights file (inside the geoclip package or its wheel).

        Returns:
            The encoder in eval mode.
        """
        encoder = cls()
        state = torch.load(path, map_location='cpu', weights_only=True)
        encoder.load_state_dict(state)
        return encoder.eval()

    @staticmethod
    def project(coords: Tensor) -> Tensor:
        """Equal Earth projection as GeoCLIP computes it.

        Args:
            coords: ``(N, 2)`` (lon, lat) in degrees.

        Returns:
            ``(N, 2)`` projected (x, y), divided by 180 after scaling.
        """
        lon, lat = torch.deg2rad(coords[:, 0]), torch.deg2rad(coords[:, 1])
        theta = torch.asin(math.sqrt(3.0) / 2 * torch.sin(lat))
        denominator = 3 * (
            9 * _A4 * theta**8 + 7 * _A3 * theta**6 + 3 * _A2 * theta**2 + _A1
        )
        x = 2 * math.sqrt(3.0) * lon * torch.cos(theta) / denominator
        y = _A4 * theta**9 + _A3 * theta**7 + _A2 * theta**3 + _A1 * theta
        return torch.stack([x, y], dim=1) * _SCALE / 180

    def forward(self, coords: Tensor) -> Tensor:
        """Embed coordinates.

        Args:
            coords: ``(N, 2)`` (lon, lat) in degrees.

        Returns:
            ``(N, 512)`` embeddings.
        """
        projected = self.project(coords)
        out = torch.zeros(len(coords), 512, dtype=projected.dtype)
        for i in range(len(self.sigmas)):
            out = out + self.get_submodule(f'LocEnc{i}')(projected)
        return out


def _geoclip(cache_dir: pathlib.Path | None) -> BenchmarkEncoder:
    source = SOURCES['geoclip']
    path = source.locate(cache_dir)
    if path is None:
        raise DataUnavailableError(source.install_hint())
    encoder = GeoCLIPLocationEncoder.from_weights(path)
    return BenchmarkEncoder(
        'geoclip',
        "GeoCLIP's pretrained location encoder (512-d), weights of geoclip==1.3.0",
        _module_embedder(encoder),
        {'weights': str(path), 'sha256': _sha256(path)},
    )


def resolve_encoder(
    spec: str, seed: int = 0, cache_dir: pathlib.Path | None = None
) -> BenchmarkEncoder:
    """Build the encoder named by a specification (see the module docstring).

    Args:
        spec: The specification.
        seed: Seed of randomly initialised networks.
        cache_dir: The benchmark cache folder (for GeoCLIP's wheel).

    Returns:
        The encoder.

    Raises:
        DataUnavailableError: If GeoCLIP's weights are not available.
        ValueError: If ``spec`` names nothing known.
    """
    head, hyperparameters = split_hyperparameters(spec)
    label, _, body = head.rpartition('=') if '=' in head else ('', '', head)
    if hyperparameters:
        encoder = _resolve_with(body, hyperparameters, seed)
        encoder.name = f'{body}:{spec.rpartition(":")[2]}'
    else:
        encoder = _resolve(body, seed, cache_dir)
    if label:
        encoder.name = label
    return encoder


def split_hyperparameters(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``NAME:KEY=VALUE,KEY=VALUE`` into the name and its hyperparameters.

    Values are parsed as YAML scalars (``32`` is an int, ``0.5`` a float,
    ``true`` a bool, anything else a string). A specification without a
    ``:KEY=VALUE`` tail is returned whole with no hyperparameters.

    Args:
        spec: An encoder specification.

    Returns:
        ``(spec without the tail, {key: value})``.

    Raises:
        ValueError: If the tail has an empty key or a value that is not a
            scalar.
    """
    head, colon, tail = spec.rpartition(':')
    if not colon or not head or '=' not in tail:
        return spec, {}
    hyperparameters: dict[str, Any] = {}
    for item in tail.split(','):
        key, equals, text = item.partition('=')
        key = key.strip()
        if not equals or not key:
            raise ValueError(
                f'encoder {spec!r}: expected NAME:KEY=VALUE,KEY=VALUE, got {item!r}'
            )
        value = yaml.safe_load(text) if text.strip() else ''
        if isinstance(value, list | dict):
            raise ValueError(f'encoder {spec!r}: {key} must be a scalar, got {text!r}')
        hyperparameters[key] = value
    return head, hyperparameters


def _resolve_with(
    spec: str, hyperparameters: Mapping[str, Any], seed: int
) -> BenchmarkEncoder:
    # Hyperparameters only make sense for components built here; a baseline
    # or a checkpoint has its own, fixed ones.
    encoding_args = {
        k: v for k, v in hyperparameters.items() if not k.startswith('network.')
    }
    network_args = {
        k.removeprefix('network.'): v
        for k, v in hyperparameters.items()
        if k.startswith('network.')
    }
    shown = ', '.join(f'{k}={v!r}' for k, v in hyperparameters.items())
    registry = get_registry()
    if spec in registry.names('positional_encoding') and not network_args:
        encoding = get_positional_encoding(spec, **encoding_args)
        return BenchmarkEncoder(
            spec,
            f'registered positional encoding {spec!r} ({shown}), no network',
            _module_embedder(encoding),
        )
    if '+' in spec and spec not in BASELINES:
        encoding_name, _, network_name = spec.partition('+')
        torch.manual_seed(seed)
        module = build_location_encoder(
            encoding_name,
            network_name,
            embed_dim=256,
            positional_encoding_args=encoding_args,
            network_args=network_args,
        )
        return BenchmarkEncoder(
            spec,
            f'{encoding_name} + {network_name} ({shown}), random initialisation '
            f'(seed {seed})',
            _module_embedder(module),
        )
    raise ValueError(
        f'encoder {spec!r} takes no KEY=VALUE hyperparameters: they apply to a '
        'registered positional encoding (encoding keys) or to ENCODING+NETWORK '
        '(encoding keys, and network.KEY for the network)'
    )


def _resolve(spec: str, seed: int, cache_dir: pathlib.Path | None) -> BenchmarkEncoder:
    if spec == 'lonlat':
        return BenchmarkEncoder(
            'lonlat', 'raw (lon, lat) in degrees', lambda c: np.asarray(c, float)
        )
    if spec == 'sh':
        encoding = get_positional_encoding('sphericalharmonics', legendre_polys=10)
        return BenchmarkEncoder(
            'sh',
            'spherical harmonics L = 10 (100 features), no network',
            _module_embedder(encoding),
        )
    if spec == 'satclip-random':
        return BenchmarkEncoder(
            'satclip-random',
            f'SatCLIP L = 10 SIREN encoder, random initialisation (seed {seed})',
            _module_embedder(_satclip_random(seed)),
        )
    if spec == 'geoclip':
        return _geoclip(cache_dir)
    registry = get_registry()
    encodings = registry.names('positional_encoding')
    if spec in encodings:
        return BenchmarkEncoder(
            spec,
            f'registered positional encoding {spec!r}, no network',
            _module_embedder(get_positional_encoding(spec)),
        )
    path = pathlib.Path(spec)
    if '+' in spec and not path.is_file():
        # ENCODING+NETWORK; an existing file whose name holds '+' is a checkpoint.
        encoding_name, _, network_name = spec.partition('+')
        torch.manual_seed(seed)
        module = build_location_encoder(encoding_name, network_name, embed_dim=256)
        return BenchmarkEncoder(
            spec,
            f'{encoding_name} + {network_name}, random initialisation (seed {seed})',
            _module_embedder(module),
        )
    if path.is_file() or '/' in spec:
        loaded = load_checkpoint_encoder(spec)
        info = {'source': spec}
        if path.is_file():
            info['sha256'] = _sha256(path)
        name = path.parent.name if path.stem in ('last', 'best') else path.stem
        return BenchmarkEncoder(
            name,
            f'checkpoint {spec}',
            _module_embedder(loaded),
            info,
            pretrained=loaded,
        )
    raise ValueError(
        f'unknown encoder {spec!r}: use one of {", ".join(BASELINES)}, a '
        f'registered positional encoding ({", ".join(encodings)}), '
        f'ENCODING+NETWORK, or a checkpoint path'
    )
