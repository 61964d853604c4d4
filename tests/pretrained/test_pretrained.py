import dataclasses
import hashlib
import pathlib
import urllib.error

import lightning
import pytest
import torch
from huggingface_hub.errors import LocalEntryNotFoundError
from satclip_checkpoints import (
    official_checkpoint,
    random_points,
    resnet18_visual,
    torchgeo_model,
    write_official,
)

import satclip_tg
from satclip_tg.pretrained import (
    OFFICIAL_CHECKPOINTS,
    CheckpointError,
    CheckpointUnavailableError,
    get_pretrained_info,
    load_location_encoder,
    load_satclip,
    resolve_device,
)
from satclip_tg.pretrained import formats as pretrained
from satclip_tg.tasks import SatCLIPTask
from satclip_tg.tasks.satclip import CHECKPOINT_KEY

TINY_TASK = {
    'model': 'resnet18',
    'in_channels': 4,
    'positional_encoding_args': {'legendre_polys': 4},
    'network_args': {'hidden_dim': 16, 'num_hidden_layers': 1},
    'embed_dim': 8,
}


@pytest.fixture(scope='module')
def model_l10():
    return torchgeo_model(10)


@pytest.fixture(scope='module')
def official_l10(tmp_path_factory, model_l10) -> pathlib.Path:
    path = tmp_path_factory.mktemp('official') / 'satclip-resnet18-l10.ckpt'
    return write_official(path, model_l10)


def task_checkpoint(task: SatCLIPTask, path: pathlib.Path, **overrides) -> pathlib.Path:
    """Write a checkpoint the way Lightning's Trainer.save_checkpoint lays it out."""
    hparams = {**dict(task.hparams), **overrides}
    checkpoint = {
        'epoch': 0,
        'global_step': 1,
        'pytorch-lightning_version': lightning.__version__,
        'state_dict': task.state_dict(),
        'hyper_parameters': hparams,
    }
    task.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


# ---------------------------------------------------------------- official


def test_official_checkpoint_matches_torchgeo_float64(official_l10, model_l10):
    encoder = load_location_encoder(official_l10, dtype=torch.float64)
    assert not encoder.training
    assert encoder.config == {
        'positional_encoding': 'sphericalharmonics',
        'positional_encoding_args': {'legendre_polys': 10},
        'network': 'siren',
        'network_args': {'hidden_dim': 512, 'num_hidden_layers': 2},
        'embed_dim': 256,
    }
    coords = random_points(4000)
    with torch.no_grad():
        ours = encoder(coords)
        reference = model_l10(coords)
        single = load_location_encoder(official_l10)(coords)
    assert ours.dtype == torch.float64
    assert (ours - reference).abs().max() < 1e-8
    # float32 is within 2e-4 of the float64 result.
    assert single.dtype == torch.float32
    assert (single.double() - ours).abs().max() < 2e-4
    info = get_pretrained_info(encoder)
    assert info is not None
    assert info.layout == 'satclip-official'
    assert info.path == str(official_l10)
    assert (info.legendre_polys, info.hidden_dim, info.num_hidden_layers) == (
        10,
        512,
        2,
    )
    assert info.embed_dim == 256
    assert info.hyper_parameters['vision_layers'] == 'moco_resnet18'


def test_official_l40_matches_torchgeo(tmp_path):
    model = torchgeo_model(40, seed=3)
    path = write_official(tmp_path / 'satclip-vit16-l40.ckpt', model)
    encoder = load_location_encoder(str(path), dtype=torch.float64)
    coords = random_points(1000, seed=1, max_lat=89.95)
    with torch.no_grad():
        ours = encoder(coords)
        assert (ours - model(coords)).abs().max() < 1e-8
        single = load_location_encoder(path)(coords)
    assert (single.double() - ours).abs().max() < 2e-4
    assert get_pretrained_info(encoder).legendre_polys == 40


def test_torchgeo_state_dict_file_and_in_memory(tmp_path, model_l10):
    path = tmp_path / 'satclip_state.pt'
    torch.save(model_l10.state_dict(), path)
    coords = random_points(200)
    with torch.no_grad():
        expected = model_l10(coords)
        for source in (path, model_l10.state_dict()):
            encoder = load_location_encoder(source, dtype=torch.float64)
            assert (encoder(coords) - expected).abs().max() < 1e-8
            assert get_pretrained_info(encoder).layout == 'state-dict'


def test_exported_from_the_package():
    assert satclip_tg.load_location_encoder is load_location_encoder
    assert satclip_tg.load_satclip is load_satclip
    assert {'load_location_encoder', 'load_satclip'} <= set(satclip_tg.__all__)
    assert pretrained._TASK_CHECKPOINT_KEY == CHECKPOINT_KEY


# ---------------------------------------------------------------- our task


def test_task_checkpoint(tmp_path):
    torch.manual_seed(0)
    task = SatCLIPTask(**TINY_TASK).eval()
    path = task_checkpoint(task, tmp_path / 'epoch=0.ckpt')
    encoder = load_location_encoder(path)
    assert get_pretrained_info(encoder).layout == 'satclip-tg'
    assert encoder.config == task.location_encoder.config
    coords = random_points(50).float()
    with torch.no_grad():
        assert torch.equal(encoder(coords), task.location_encoder(coords))


def test_task_checkpoint_with_another_architecture(tmp_path):
    torch.manual_seed(0)
    task = SatCLIPTask(
        **{
            **TINY_TASK,
            'positional_encoding': 'wrap',
            'positional_encoding_args': {},
            'network': 'fcnet',
            'network_args': {'hidden_dim': 16, 'num_residual_layers': 1},
        }
    ).eval()
    path = task_checkpoint(task, tmp_path / 'wrap.ckpt')
    encoder = load_location_encoder(path)
    coords = random_points(20).float()
    with torch.no_grad():
        assert torch.equal(encoder(coords), task.location_encoder(coords))
    info = get_pretrained_info(encoder)
    assert info.legendre_polys is None and info.embed_dim == 8


def test_load_satclip_from_task_checkpoint_downloads_nothing(tmp_path):
    torch.manual_seed(0)
    task = SatCLIPTask(**TINY_TASK).eval()
    # The recorded backbone weights name would need a download (sockets are
    # disabled in the tests): the loader must not try.
    path = task_checkpoint(
        task,
        tmp_path / 'task.ckpt',
        weights='ResNet18_Weights.SENTINEL2_ALL_MOCO',
    )
    loaded = load_satclip(path)
    assert isinstance(loaded, SatCLIPTask) and not loaded.training
    images = torch.rand(2, 4, 32, 32)
    points = random_points(2).float()
    with torch.no_grad():
        got = loaded(images, points)
        expected = task(images, points)
    assert torch.allclose(got[0], expected[0]) and torch.equal(got[1], expected[1])


# ------------------------------------------------------------- full model


def test_load_satclip_official_uses_the_checkpoint_image_weights(tmp_path):
    model = torchgeo_model(10, seed=5)
    visual = resnet18_visual()
    path = write_official(tmp_path / 'satclip-resnet18-l10.ckpt', model, visual=visual)
    task = load_satclip(path)
    assert isinstance(task, SatCLIPTask) and not task.training
    assert task.hparams['model'] == 'resnet18'
    assert task.hparams['in_channels'] == 13
    assert task.hparams['weights'] is None
    state = task.state_dict()
    for key in ('conv1.weight', 'layer4.1.bn2.running_var', 'fc.weight'):
        assert torch.equal(state[f'image_encoder.model.{key}'], visual[key])
    assert float(task.logit_scale.detach()) == pytest.approx(2.6592)
    coords = random_points(30)
    with torch.no_grad():
        location = task.location_encoder(coords.float())
        assert (location.double() - model(coords)).abs().max() < 2e-4
        images = torch.rand(2, 13, 64, 64)
        image_embeddings, _ = task(images, coords[:2].float())
    assert image_embeddings.shape == (2, 256)


def test_load_satclip_checks_the_backbone(tmp_path, model_l10):
    visual = resnet18_visual()
    path = tmp_path / 'wrong.ckpt'
    write_official(path, model_l10, visual=visual, vision_layers='moco_vit16')
    with pytest.raises(CheckpointError, match='vision_layers'):
        load_satclip(path)


def test_load_satclip_needs_image_weights(tmp_path, model_l10):
    path = tmp_path / 'state.pt'
    torch.save(model_l10.state_dict(), path)
    with pytest.raises(CheckpointError, match='load_location_encoder'):
        load_satclip(path)
    partial = write_official(tmp_path / 'partial.ckpt', model_l10)
    with pytest.raises(CheckpointError, match='do not fit a resnet18'):
        load_satclip(partial)


# ------------------------------------------------------------ Hugging Face


def test_hub_repo_id_uses_the_cache(monkeypatch, official_l10):
    calls = []

    def fake_download(repo_id, filename, **kwargs):
        calls.append((repo_id, filename, kwargs))
        return str(official_l10)

    monkeypatch.setattr('huggingface_hub.hf_hub_download', fake_download)
    encoder = load_location_encoder('microsoft/SatCLIP-ResNet18-L10')
    info = get_pretrained_info(encoder)
    assert info.repo_id == 'microsoft/SatCLIP-ResNet18-L10'
    assert info.filename == 'satclip-resnet18-l10.ckpt'
    assert info.layout == 'satclip-official'
    assert calls[0][:2] == (
        'microsoft/SatCLIP-ResNet18-L10',
        'satclip-resnet18-l10.ckpt',
    )
    assert calls[0][2]['revision'] is None
    assert calls[0][2]['local_files_only'] is False
    # Short names and other spellings work; the revision can be chosen.
    load_location_encoder('satclip-resnet18-l10', revision='abc', local_files_only=True)
    assert calls[1][2]['revision'] == 'abc'
    assert calls[1][2]['local_files_only'] is True


def test_hub_pins_the_known_revision(monkeypatch, tmp_path):
    path = write_official(tmp_path / 'satclip-vit16-l40.ckpt', torchgeo_model(40))
    seen = {}

    def fake_download(repo_id, filename, **kwargs):
        seen.update(kwargs, repo_id=repo_id, filename=filename)
        return str(path)

    monkeypatch.setattr('huggingface_hub.hf_hub_download', fake_download)
    load_location_encoder('microsoft/SatCLIP-ViT16-L40')
    assert seen['revision'] == '0ef2acc0b91d3c8cfdf4a0cc03207095989287ab'
    assert seen['filename'] == 'satclip-vit16-l40.ckpt'


def test_hub_file_must_match_the_model(monkeypatch, official_l10):
    monkeypatch.setattr(
        'huggingface_hub.hf_hub_download', lambda *a, **k: str(official_l10)
    )
    with pytest.raises(CheckpointError, match='legendre_polys=40'):
        load_location_encoder('microsoft/SatCLIP-ResNet50-L40')


def test_hub_offline_without_cache_explains(monkeypatch):
    def offline(repo_id, filename, **kwargs):
        raise LocalEntryNotFoundError('cannot find the requested files in the cache')

    monkeypatch.setattr('huggingface_hub.hf_hub_download', offline)
    with pytest.raises(CheckpointUnavailableError) as info:
        load_location_encoder('microsoft/SatCLIP-ViT16-L10')
    message = str(info.value)
    assert 'not in the Hugging Face cache' in message
    assert "load_location_encoder('/path/to/satclip-vit16-l10.ckpt')" in message
    assert '--encoder /path/to/satclip-vit16-l10.ckpt' in message
    assert isinstance(info.value, FileNotFoundError)


def test_hub_connection_error_explains(monkeypatch):
    def refused(*args, **kwargs):
        raise ConnectionError('connection refused')

    monkeypatch.setattr('huggingface_hub.hf_hub_download', refused)
    with pytest.raises(CheckpointUnavailableError, match='local path'):
        load_location_encoder('hf://someone/satclip-finetune/model.ckpt@v1')


def test_hub_uri_and_sha256(monkeypatch, official_l10):
    seen = {}

    def fake_download(repo_id, filename, **kwargs):
        seen.update(kwargs, repo_id=repo_id, filename=filename)
        return str(official_l10)

    monkeypatch.setattr('huggingface_hub.hf_hub_download', fake_download)
    encoder = load_location_encoder('hf://someone/satclip-finetune/sub/model.ckpt@v1')
    assert (seen['repo_id'], seen['filename'], seen['revision']) == (
        'someone/satclip-finetune',
        'sub/model.ckpt',
        'v1',
    )
    assert get_pretrained_info(encoder).repo_id == 'someone/satclip-finetune'
    # A recorded hash is checked.
    repo = 'microsoft/SatCLIP-ResNet18-L10'
    digest = hashlib.sha256(official_l10.read_bytes()).hexdigest()
    entry = OFFICIAL_CHECKPOINTS[repo]
    monkeypatch.setitem(
        OFFICIAL_CHECKPOINTS, repo, dataclasses.replace(entry, sha256=digest)
    )
    load_location_encoder(repo)
    monkeypatch.setitem(
        OFFICIAL_CHECKPOINTS, repo, dataclasses.replace(entry, sha256='0' * 64)
    )
    with pytest.raises(CheckpointError, match='SHA-256'):
        load_location_encoder(repo)


# ------------------------------------------------------------ TorchGeo weights


def test_torchgeo_weights_from_the_hub_cache(monkeypatch, tmp_path):
    from torchgeo.models import SatCLIP_Weights

    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path))
    weights = SatCLIP_Weights.SATCLIP_VIT16_L40
    # Not cached and downloads disabled / impossible: a clear error.
    with pytest.raises(CheckpointUnavailableError, match='torch hub cache'):
        load_location_encoder(weights, local_files_only=True)

    def no_network(*args, **kwargs):
        raise urllib.error.URLError('network unreachable')

    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', no_network)
    with pytest.raises(CheckpointUnavailableError, match='could not be downloaded'):
        load_location_encoder(weights)
    # Cached: read from there, never downloaded.
    model = torchgeo_model(40, seed=2)
    cached = tmp_path / 'checkpoints' / 'satclip-vit16-l40.ckpt'
    cached.parent.mkdir()
    write_official(cached, model, vision_layers='moco_vit16')
    for source in (weights, 'SatCLIP_Weights.SATCLIP_VIT16_L40'):
        encoder = load_location_encoder(source, dtype=torch.float64)
        info = get_pretrained_info(encoder)
        assert info.path == str(cached)
        assert info.source == 'SatCLIP_Weights.SATCLIP_VIT16_L40'
        coords = random_points(100)
        with torch.no_grad():
            assert (encoder(coords) - model(coords)).abs().max() < 1e-8


# ------------------------------------------------------------------ errors


def test_truncated_file(tmp_path, official_l10):
    data = official_l10.read_bytes()
    path = tmp_path / 'truncated.ckpt'
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated'):
        load_location_encoder(path)
    empty = tmp_path / 'empty.ckpt'
    empty.write_bytes(b'')
    with pytest.raises(CheckpointError, match='0 bytes'):
        load_location_encoder(empty)


class NotAllowed:
    pass


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / 'object.ckpt'
    torch.save({'state_dict': NotAllowed()}, path)
    with pytest.raises(CheckpointError, match='weights_only=True'):
        load_location_encoder(path)


def test_not_a_satclip_checkpoint_lists_the_keys(tmp_path):
    import timm

    path = tmp_path / 'resnet.pt'
    torch.save(timm.create_model('resnet18').state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        load_location_encoder(path)
    message = str(info.value)
    assert "'conv1.weight'" in message
    assert 'model.location.nnet.layers.0.weight' in message
    torch.save({'something': 1}, path)
    with pytest.raises(CheckpointError, match="'something'"):
        load_location_encoder(path)


def test_unknown_layouts(tmp_path, model_l10):
    state = dict(model_l10.state_dict())
    state['nnet.layers.0.weight'] = torch.zeros(512, 99, dtype=torch.float64)
    with pytest.raises(CheckpointError, match='99 inputs'):
        load_location_encoder(state)
    state = dict(model_l10.state_dict())
    state['nnet.layers.1.weight'] = torch.zeros(512, 256, dtype=torch.float64)
    with pytest.raises(CheckpointError, match=r'layers\.1'):
        load_location_encoder(state)
    checkpoint = official_checkpoint(model_l10, legendre_polys=40)
    with pytest.raises(CheckpointError, match='legendre_polys=40'):
        load_location_encoder(checkpoint)
    checkpoint = official_checkpoint(model_l10, le_type='grid')
    with pytest.raises(CheckpointError, match='grid'):
        load_location_encoder(checkpoint)


def test_bad_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_location_encoder(tmp_path / 'missing.ckpt')
    with pytest.raises(CheckpointError, match='microsoft/SatCLIP-ViT16-L40'):
        load_location_encoder('someone/unknown-model')
    with pytest.raises(CheckpointError, match='folder'):
        load_location_encoder(tmp_path)
    with pytest.raises(CheckpointError, match='TorchGeo weights name'):
        load_location_encoder('SatCLIP_Weights.NOPE')
    with pytest.raises(TypeError):
        load_location_encoder(42)


def test_resolve_device(monkeypatch):
    assert resolve_device(None) == torch.device('cpu')
    assert resolve_device('cpu') == torch.device('cpu')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert resolve_device('auto') == torch.device('cpu')
    with pytest.raises(ValueError, match='CUDA is not available'):
        resolve_device('cuda')
    with pytest.raises(ValueError, match="'quantum' is not a device"):
        resolve_device('quantum')
