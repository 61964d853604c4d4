"""Any timm model name as an image backbone, beyond the registered ones."""

import json
import types
from pathlib import Path
from typing import Any

import pytest
import timm
import torch
import yaml
from torch import nn
from torchvision.models._api import WeightsEnum

from satclip_tg.cli import main
from satclip_tg.image.backbones import (
    ImageEncoder,
    backbone_feature_dim,
    backbone_features,
)
from satclip_tg.image.timm_models import TIMM_PROVIDER
from satclip_tg.plugins import (
    Registry,
    UnknownComponentError,
    get_registry,
    hookimpl,
)
from satclip_tg.tasks import SatCLIPTask
from satclip_tg.testing import check_image_backbone

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / 'tests' / 'data' / 's2_100k'

TASK_ARGS: dict[str, Any] = {
    'weights': None,
    'in_channels': 13,
    'freeze_backbone': True,
    'positional_encoding': 'sphericalharmonics',
    'positional_encoding_args': {'legendre_polys': 4},
    'network': 'siren',
    'network_args': {'hidden_dim': 16, 'num_hidden_layers': 1, 'dropout': 0.0},
    'embed_dim': 8,
}


def build(name: str, **kwargs: Any) -> nn.Module:
    factory = get_registry().get('image_backbone', name).factory
    return factory(13, 8, **kwargs)


# --- building ------------------------------------------------------------------
@pytest.mark.parametrize(
    ('name', 'width'),
    [('resnet10t', 512), ('efficientnet_b0', 1280), ('mobilenetv3_small_050', 1024)],
)
def test_unregistered_timm_name_builds_an_image_encoder(name, width) -> None:
    component = get_registry().get('image_backbone', name)
    assert component.plugin == TIMM_PROVIDER
    assert component.distribution == 'timm'
    assert component.version == timm.__version__
    torch.manual_seed(0)
    encoder = component.factory(13, 8)
    assert isinstance(encoder, ImageEncoder) and encoder.model_name == name
    images = torch.randn(2, 13, 32, 32)
    assert encoder(images).shape == (2, 8)
    # The width of the features the projection takes, which for MobileNetV3
    # (a head layer after pooling) is not timm's num_features (288).
    assert backbone_feature_dim(encoder) == width
    features = backbone_features(encoder, images)
    assert features.shape == (2, width)
    torch.testing.assert_close(encoder.projection(features), encoder(images))


def test_unregistered_timm_backbone_honours_the_contract() -> None:
    check_image_backbone(
        get_registry().get('image_backbone', 'mobilenetv3_small_050').factory,
        in_channels=13,
        image_size=32,
    )


def test_timm_name_with_a_pretrained_tag_builds_without_a_download() -> None:
    # pytest-socket would fail this test on any download attempt.
    encoder = build('resnet10t.c3_in1k')
    assert encoder(torch.randn(2, 13, 32, 32)).shape == (2, 8)


def test_task_with_an_unregistered_timm_backbone() -> None:
    task = SatCLIPTask(**TASK_ARGS, model='resnet10t')
    images, points = torch.randn(2, 13, 32, 32), torch.zeros(2, 2)
    image_embeddings, location_embeddings = task(images, points)
    assert image_embeddings.shape == location_embeddings.shape == (2, 8)


def test_timm_model_without_a_single_classifier_is_refused() -> None:
    with pytest.raises(ValueError, match='no single classifier layer'):
        build('deit_tiny_distilled_patch16_224')


# --- weights -------------------------------------------------------------------
def test_torchgeo_weights_for_an_unregistered_architecture(monkeypatch) -> None:
    source = timm.create_model('vit_small_patch14_dinov2', in_chans=13)
    monkeypatch.setattr(
        WeightsEnum, 'get_state_dict', lambda self, *a, **k: source.state_dict()
    )
    encoder = build(
        'vit_small_patch14_dinov2',
        weights='ViTSmall14_DINOv2_Weights.SENTINEL2_ALL_SOFTCON',
        img_size=28,
    )
    assert isinstance(encoder, ImageEncoder)
    model: Any = encoder.model
    torch.testing.assert_close(
        model.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight
    )
    assert model.pos_embed.shape[1] == 1 + 2 * 2  # resampled to a 2 x 2 grid


def test_torchgeo_weights_check_band_count_and_architecture() -> None:
    with pytest.raises(ValueError, match=r'expect 9 input bands.*set in_channels'):
        build('resnet152', weights='ResNet152_Weights.SENTINEL2_MI_MS_SATLAS')
    with pytest.raises(ValueError, match="not efficientnet_b0: set the backbone to 'r"):
        build('efficientnet_b0', weights='ResNet50_Weights.SENTINEL2_ALL_MOCO')
    with pytest.raises(ValueError, match='not for a timm architecture'):
        build('resnet10t', weights='Swin_V2_T_Weights.SENTINEL2_MI_MS_SATLAS')


def test_checkpoint_weights_for_an_unregistered_architecture(tmp_path) -> None:
    source = timm.create_model('resnet10t', in_chans=13, num_classes=5)
    path = tmp_path / 'backbone.pt'
    torch.save({f'backbone.{k}': v for k, v in source.state_dict().items()}, path)
    encoder = build('resnet10t', weights=str(path))
    model: Any = encoder.model
    torch.testing.assert_close(model.conv1[0].weight, source.conv1[0].weight)


# --- names ---------------------------------------------------------------------
def test_timm_names_are_accepted_but_not_listed() -> None:
    names = get_registry().names('image_backbone')
    assert {'resnet18', 'resnet50', 'vit_small_patch16_224', 'mosaiks'} <= set(names)
    assert 'efficientnet_b0' not in names
    listed = [c.name for c in get_registry().components('image_backbone')]
    assert 'efficientnet_b0' not in listed and len(listed) < 100


@pytest.mark.parametrize(
    ('name', 'suggestion'),
    [('efficientnet_b00', 'efficientnet_b0'), ('resnet81', 'resnet18')],
)
def test_misspelt_name_suggests_timm_and_registered_names(name, suggestion) -> None:
    with pytest.raises(UnknownComponentError) as info:
        get_registry().get('image_backbone', name)
    message = str(info.value)
    assert f'unknown image backbone {name!r}. Did you mean {suggestion!r}' in message
    assert 'Available: ' in message and 'vit_small_patch16_224' in message
    assert 'or any timm model name' in message
    assert 'efficientnet_b7' not in message.partition('Available:')[2]
    assert '\n' not in message


def test_other_kinds_accept_no_timm_names() -> None:
    with pytest.raises(UnknownComponentError) as info:
        get_registry().get('network', 'resnet18')
    assert 'timm' not in str(info.value)


def test_a_registered_plugin_name_wins_over_timm(monkeypatch) -> None:
    class Marker(nn.Module):
        def __init__(self, in_channels: int, num_outputs: int, **kwargs: Any) -> None:
            super().__init__()
            self.projection = nn.Linear(in_channels, num_outputs)

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.projection(images.mean((2, 3)))
            return out

    plugin = types.SimpleNamespace()

    def satclip_tg_image_backbones() -> dict[str, Any]:
        return {'resnet10t': Marker}

    plugin.satclip_tg_image_backbones = hookimpl(satclip_tg_image_backbones)
    registry = Registry(load_entry_points=False)
    registry.register(plugin, name='mine')
    assert registry.get('image_backbone', 'resnet10t').plugin == 'mine'
    assert registry.get('image_backbone', 'resnet14t').plugin == TIMM_PROVIDER
    monkeypatch.setattr('satclip_tg.tasks.satclip.get_registry', lambda: registry)
    task = SatCLIPTask(**TASK_ARGS, model='resnet10t')
    assert isinstance(task.image_encoder, Marker)


# --- command line --------------------------------------------------------------
def write_config(path: Path, model: str) -> Path:
    config = {
        'seed_everything': 0,
        'trainer': {'accelerator': 'cpu', 'devices': 1, 'precision': '32-true'},
        'model': {
            'class_path': 'satclip_tg.tasks.SatCLIPTask',
            'init_args': {**TASK_ARGS, 'model': model},
        },
        'data': {
            'class_path': 'satclip_tg.datamodules.S2100KDataModule',
            'init_args': {
                'root': str(FIXTURE),
                'batch_size': 4,
                'num_workers': 0,
                'crop_size': 32,
                'val_split_pct': 0.25,
                'seed': 0,
            },
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_fit_with_an_unregistered_timm_backbone(tmp_path) -> None:
    config = write_config(tmp_path / 'fit.yaml', 'resnet18')
    args = [
        'fit',
        f'--config={config}',
        '--model.init_args.model=resnet10t',
        '--trainer.fast_dev_run=true',
        f'--trainer.default_root_dir={tmp_path}',
    ]
    assert main(args) == 0


def test_cache_and_fit_on_features_of_an_unregistered_timm_backbone(
    tmp_path,
) -> None:
    config = write_config(tmp_path / 'live.yaml', 'mobilenetv3_small_050')
    features = tmp_path / 'features'
    cache_args = ['cache-features', '--config', str(config), '--output']
    assert main([*cache_args, str(features), '--views', '1']) == 0
    manifest = json.loads((features / 'manifest.json').read_text())
    assert manifest['feature_dim'] == 1024
    fit_args = [
        'fit',
        f'--config={config}',
        f'--config={ROOT / "configs" / "cached.yaml"}',
        f'--data.init_args.features={features}',
        '--data.init_args.batch_size=4',
        '--data.init_args.device_resident=false',
        '--trainer.fast_dev_run=true',
        f'--trainer.default_root_dir={tmp_path}',
    ]
    assert main(fit_args) == 0
