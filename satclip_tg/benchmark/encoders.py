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
* any of these prefixed by ``LABEL=`` to name it in the report, e.g.
  ``demo=runs/demo-1/last.ckpt``.
"""

import hashlib
import math
import pathlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from ..location.encoder import (
    build_location_encoder,
    encoder_dtype,
    get_positional_encoding,
)
from ..plugins import get_registry
from .sources import SOURCES, DataUnavailableError

__all__ = [
    'BASELINES',
    'BenchmarkEncoder',
    'GeoCLIPLocationEncoder',
    'load_checkpoint_encoder',
    'resolve_encoder',
]

#: The baselines that are always part of a benchmark run.
BASELINES = ('lonlat', 'wrap', 'sh', 'satclip-random', 'geoclip')


@dataclass
class BenchmarkEncoder:
    """A named coordinate-to-feature map.

    Attributes:
        name: Label in the report.
        description: What it is.
        embed: Maps ``(N, 2)`` float64 (lon, lat) degrees to ``(N, d)`` features.
        info: Provenance for the run manifest.
    """

    name: str
    description: str
    embed: Callable[[NDArray[np.float64]], NDArray[np.float64]]
    info: dict[str, str] = field(default_factory=dict)


def _module_embedder(
    module: nn.Module, batch_size: int = 8192
) -> Callable[[NDArray[np.float64]], NDArray[np.float64]]:
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
    label, _, body = spec.rpartition('=') if '=' in spec else ('', '', spec)
    encoder = _resolve(body, seed, cache_dir)
    if label:
        encoder.name = label
    return encoder


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
    if '+' in spec:
        encoding_name, _, network_name = spec.partition('+')
        torch.manual_seed(seed)
        module = build_location_encoder(encoding_name, network_name, embed_dim=256)
        return BenchmarkEncoder(
            spec,
            f'{encoding_name} + {network_name}, random initialisation (seed {seed})',
            _module_embedder(module),
        )
    path = pathlib.Path(spec)
    if path.is_file() or '/' in spec:
        loaded = load_checkpoint_encoder(spec)
        info = {'source': spec}
        if path.is_file():
            info['sha256'] = _sha256(path)
        name = path.parent.name if path.stem in ('last', 'best') else path.stem
        return BenchmarkEncoder(
            name, f'checkpoint {spec}', _module_embedder(loaded), info
        )
    raise ValueError(
        f'unknown encoder {spec!r}: use one of {", ".join(BASELINES)}, a '
        f'registered positional encoding ({", ".join(encodings)}), '
        f'ENCODING+NETWORK, or a checkpoint path'
    )
