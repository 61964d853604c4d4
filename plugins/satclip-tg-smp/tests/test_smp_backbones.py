"""Tests of the satclip-tg-smp plugin: conformance, weights, a training run."""

import lightning
import pytest
import satclip_tg_smp.plugin
import segmentation_models_pytorch as smp
import timm
import torch
from satclip_tg_smp import CURATED_ENCODERS, SMPImageEncoder, smp_backbone
from satclip_tg_smp.backbone import read_state_dict
from torch.utils.data import DataLoader

from satclip_tg.plugins import get_registry
from satclip_tg.tasks import SatCLIPPretraining
from satclip_tg.testing import check_image_backbone, check_plugin


def images(in_channels: int = 13, size: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(2, in_channels, size, size, generator=generator)


# --- the author's kit: conformance in a few lines ---------------------------
def test_conformance_resnet() -> None:
    check_image_backbone(smp_backbone('resnet18'), in_channels=13)


def test_plugin_module_passes_the_kit() -> None:
    components = check_plugin(
        satclip_tg_smp.plugin,
        arguments={'smp': {'encoder_name': 'mobilenet_v2', 'depth': 3}},
        only=['smp:efficientnet-b0', 'smp'],
    )
    names = {component.name for component in components}
    assert names == {'smp', *(f'smp:{name}' for name in CURATED_ENCODERS)}
    assert {component.kind for component in components} == {'image_backbone'}


def test_registered_through_the_entry_point() -> None:
    component = get_registry().get('image_backbone', 'smp:resnet34')
    assert component.distribution == 'satclip-tg-smp'
    assert component.plugin == 'smp'
    assert 'smp' in get_registry().names('image_backbone')


@pytest.mark.parametrize('name', CURATED_ENCODERS)
def test_every_curated_encoder_builds_with_13_bands(name) -> None:
    factory = get_registry().get('image_backbone', f'smp:{name}').factory
    backbone = factory(13, 8, weights=None, freeze=True)
    backbone.train()
    assert not backbone.encoder.training and backbone.projection.training
    trainable = [key for key, p in backbone.named_parameters() if p.requires_grad]
    assert trainable == ['projection.weight', 'projection.bias']
    with torch.no_grad():
        assert backbone(images()).shape == (2, 8)


def test_generic_backbone_takes_any_encoder_name() -> None:
    backbone = SMPImageEncoder(4, 8, encoder_name='tu-resnet10t', depth=3)
    assert backbone.encoder_name == 'tu-resnet10t'
    with torch.no_grad():
        assert backbone(images(4)).shape == (2, 8)
    with pytest.raises(ValueError, match="Did you mean 'resnet34'"):
        SMPImageEncoder(13, 8, encoder_name='resnet43')


def test_depth_changes_the_pooled_features() -> None:
    backbone = smp_backbone('resnet18')(13, 8, depth=3)
    assert backbone.projection.in_features == 128


# --- weights: local checkpoints only ----------------------------------------
def test_round_trip_through_a_saved_backbone(tmp_path) -> None:
    torch.manual_seed(0)
    source = smp_backbone('resnet18')(13, 8).eval()
    path = tmp_path / 'backbone.pt'
    torch.save(source.state_dict(), path)
    torch.manual_seed(1)
    loaded = smp_backbone('resnet18')(13, 8, weights=str(path)).eval()
    with torch.no_grad():
        assert torch.equal(loaded.encoder(images())[-1], source.encoder(images())[-1])


def test_lightning_checkpoint_and_safetensors(tmp_path) -> None:
    from safetensors.torch import save_file

    encoder = smp.encoders.get_encoder('efficientnet-b0', in_channels=5).eval()
    state = encoder.state_dict()
    lightning_checkpoint = {
        'epoch': 3,
        'state_dict': {
            **{f'image_encoder.encoder.{key}': value for key, value in state.items()},
            'location_encoder.network.weight': torch.zeros(2, 2),
            'image_encoder.projection.weight': torch.zeros(8, 320),
        },
    }
    torch.save(lightning_checkpoint, tmp_path / 'last.ckpt')
    save_file(
        {key: value.contiguous() for key, value in state.items()},
        tmp_path / 'w.safetensors',
    )
    for file in ('last.ckpt', 'w.safetensors'):
        assert read_state_dict(tmp_path / file).keys() == state.keys()
        backbone = SMPImageEncoder(
            5, 8, weights=str(tmp_path / file), encoder_name='efficientnet-b0'
        ).eval()
        with torch.no_grad():
            torch.testing.assert_close(
                backbone.encoder(images(5))[-1], encoder(images(5))[-1], rtol=0, atol=0
            )


def test_rgb_checkpoint_is_adapted_to_more_bands(tmp_path) -> None:
    rgb = smp.encoders.get_encoder('resnet18', in_channels=3)
    state = rgb.state_dict()
    # As published for ImageNet: with the classifier head, which is ignored.
    state['fc.weight'], state['fc.bias'] = torch.zeros(1000, 512), torch.zeros(1000)
    path = tmp_path / 'imagenet.pt'
    torch.save(state, path)
    backbone = smp_backbone('resnet18')(13, 8, weights=str(path))
    first = backbone.encoder.conv1.weight
    assert first.shape == (64, 13, 7, 7)
    for band in range(13):
        expected = rgb.conv1.weight[:, band % 3] * 3 / 13
        torch.testing.assert_close(first[:, band], expected)
    assert torch.equal(
        backbone.encoder.layer4[1].conv2.weight, rgb.layer4[1].conv2.weight
    )


def test_timm_resnet_checkpoint_loads(tmp_path) -> None:
    # TorchGeo's SSL4EO ResNet weights are timm ResNets: the keys match smp's.
    model = timm.create_model('resnet18', in_chans=13)
    path = tmp_path / 'timm_resnet18.pth'
    torch.save(model.state_dict(), path)
    backbone = smp_backbone('resnet18')(13, 8, weights=str(path))
    assert torch.equal(backbone.encoder.conv1.weight, model.conv1.weight)


def test_bad_weights_are_reported(tmp_path) -> None:
    with pytest.raises(ValueError, match='never downloads'):
        smp_backbone('resnet18')(13, 8, weights='imagenet')
    path = tmp_path / 'other.pt'
    torch.save(smp.encoders.get_encoder('mobilenet_v2').state_dict(), path)
    with pytest.raises(ValueError, match='does not fit the resnet18 encoder'):
        smp_backbone('resnet18')(13, 8, weights=str(path))
    torch.save([1, 2], tmp_path / 'list.pt')
    with pytest.raises(ValueError, match='does not hold a state dict'):
        smp_backbone('resnet18')(13, 8, weights=str(tmp_path / 'list.pt'))


# --- a training run ---------------------------------------------------------
def test_fit_trains_only_the_projection(tmp_path) -> None:
    generator = torch.Generator().manual_seed(0)
    samples = [
        {
            'image': torch.randn(4, 32, 32, generator=generator),
            'point': torch.tensor([float(i * 30 - 120), float(i * 10 - 40)]),
        }
        for i in range(8)
    ]
    loader = DataLoader(samples, batch_size=4)
    task = SatCLIPPretraining(
        model='smp:efficientnet-b0',
        in_channels=4,
        positional_encoding='wrap',
        network='linear',
        embed_dim=8,
        lr=0.01,
    )
    encoder = task.image_encoder.encoder
    encoder_before = {k: v.clone() for k, v in encoder.state_dict().items()}
    projection_before = task.image_encoder.projection.weight.detach().clone()
    trainer = lightning.Trainer(
        fast_dev_run=True,
        accelerator='cpu',
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(task, train_dataloaders=loader, val_dataloaders=loader)
    assert trainer.global_step == 1
    assert not encoder.training
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, encoder_before[key]), key
    assert not torch.equal(task.image_encoder.projection.weight, projection_before)
