"""Fake SatCLIP checkpoints in the released layouts, for the loader tests.

Nothing here touches the network: the weights are random, the layout is that
of the official Lightning checkpoints (float64 location tensors under
``model.location.nnet.*`` and again under ``model.nnet.*``, image weights
under ``model.visual.*``, ``model.logit_scale`` and ``hyper_parameters``).
"""

import pathlib
from typing import Any

import timm
import torch
from torchgeo.models import SatCLIP


def torchgeo_model(
    legendre_polys: int = 10,
    seed: int = 0,
    capacity: int = 512,
    embed_dim: int = 256,
    num_hidden_layers: int = 2,
) -> SatCLIP:
    """A randomly initialised float64 `torchgeo.models.SatCLIP` in eval mode."""
    previous = torch.get_default_dtype()
    torch.manual_seed(seed)
    torch.set_default_dtype(torch.float64)
    try:
        model = SatCLIP(
            legendre_polys=legendre_polys,
            capacity=capacity,
            embed_dim=embed_dim,
            num_hidden_layers=num_hidden_layers,
        )
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def official_checkpoint(
    model: SatCLIP,
    visual: dict[str, torch.Tensor] | None = None,
    vision_layers: str = 'moco_resnet18',
    **hyper_parameters: Any,
) -> dict[str, Any]:
    """A checkpoint dict in the official layout, holding ``model``'s weights."""
    nnet = {key: value.double() for key, value in model.state_dict().items()}
    embed_dim = model.nnet.last_layer.weight.shape[0]
    if visual is None:
        # A few image keys, as in the real files (not a complete backbone).
        visual = {
            'conv1.weight': torch.randn(64, 13, 7, 7),
            'fc.weight': torch.randn(embed_dim, 512),
            'fc.bias': torch.randn(embed_dim),
        }
    state = {f'model.visual.{key}': value for key, value in visual.items()}
    state.update({f'model.location.{key}': value for key, value in nnet.items()})
    state.update({f'model.{key}': value.clone() for key, value in nnet.items()})
    state['model.logit_scale'] = torch.tensor(2.6592)
    hparams: dict[str, Any] = {
        'embed_dim': embed_dim,
        'image_resolution': 256,
        'vision_layers': vision_layers,
        'in_channels': 13,
        'le_type': 'sphericalharmonics',
        'pe_type': 'siren',
        'legendre_polys': model.posenc.L,
        'harmonics_calculation': 'analytic',
        'learning_rate': 1e-4,
        'weight_decay': 0.01,
        'num_hidden_layers': len(model.nnet.layers),
        'capacity': model.nnet.layers[0].weight.shape[0],
    }
    hparams.update(hyper_parameters)
    return {
        'epoch': 499,
        'global_step': 12345,
        'pytorch-lightning_version': '2.1.0',
        'state_dict': state,
        'hyper_parameters': hparams,
        'optimizer_states': [],
        'lr_schedulers': [],
    }


def resnet18_visual(embed_dim: int = 256, seed: int = 1) -> dict[str, torch.Tensor]:
    """Complete timm ResNet-18 image weights (13 bands), as SatCLIP stores them."""
    torch.manual_seed(seed)
    model = timm.create_model('resnet18', in_chans=13, num_classes=embed_dim)
    return {key: value.clone() for key, value in model.state_dict().items()}


def write_official(path: pathlib.Path, model: SatCLIP, **kwargs: Any) -> pathlib.Path:
    """Write an official-layout checkpoint file and return its path."""
    torch.save(official_checkpoint(model, **kwargs), path)
    return path


def random_points(count: int, seed: int = 0, max_lat: float = 89.9) -> torch.Tensor:
    """``(count, 2)`` float64 (lon, lat), latitudes within +-max_lat."""
    generator = torch.Generator().manual_seed(seed)
    lon = torch.rand(count, generator=generator, dtype=torch.float64) * 360 - 180
    lat = (
        torch.rand(count, generator=generator, dtype=torch.float64) * 2 - 1
    ) * max_lat
    return torch.stack([lon, lat], dim=1)


def task_layout_checkpoint(
    encoder: torch.nn.Module, config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A minimal checkpoint dict in satclip-tg's task layout.

    The location tensors sit under ``location_encoder.*`` and the recipe under
    ``satclip_tg.location_encoder.config`` (``config`` replaces the encoder's
    own, e.g. to craft one that does not fit the tensors).
    """
    state = {
        f'location_encoder.{key}': value.clone()
        for key, value in encoder.state_dict().items()
    }
    return {
        'epoch': 0,
        'global_step': 1,
        'state_dict': state,
        'hyper_parameters': {},
        'satclip_tg': {
            'format': 1,
            'location_encoder': {
                'config': config if config is not None else encoder.config,
                'state_dict_prefix': 'location_encoder.',
            },
        },
    }
