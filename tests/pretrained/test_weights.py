"""The registry of your own checkpoints (`satclip_tg.weights`)."""

import hashlib
import json
import pathlib

import pytest
import torch

from satclip_tg.cli import main
from satclip_tg.pretrained import (
    CheckpointError,
    get_pretrained_info,
    load_location_encoder,
)
from satclip_tg.pretrained import registry as weights_registry
from satclip_tg.weights import (
    WeightsRegistryError,
    get_weight,
    list_weights,
    register_weights,
    registry_path,
    unregister_weights,
)

POINTS = torch.tensor([[2.35, 48.86], [-122.3, 47.6], [151.2, -33.9]])


@pytest.fixture(autouse=True)
def registry(tmp_path, monkeypatch) -> pathlib.Path:
    """A registry file of the test's own, and no registrations of this process."""
    path = tmp_path / 'config' / 'weights.json'
    monkeypatch.setenv('SATCLIP_TG_WEIGHTS', str(path))
    monkeypatch.setattr(weights_registry, 'SESSION', {})
    return path


def embed(source) -> torch.Tensor:
    with torch.no_grad():
        out: torch.Tensor = load_location_encoder(source)(POINTS)
    return out


def test_register_in_process_and_load_by_name(trained, registry) -> None:
    entry = register_weights('tiny', trained, description='one step')
    assert list_weights() == ['tiny']
    assert get_weight('tiny') == entry
    assert entry.meta['embed_dim'] == 8 and entry.meta['legendre_polys'] == 3
    assert not entry.persistent and not registry.exists()
    torch.testing.assert_close(embed('tiny'), embed(trained))
    info = get_pretrained_info(load_location_encoder('tiny'))
    assert info is not None and info.source == 'tiny'
    assert info.path == str(trained.resolve())


def test_cli_register_persists_across_sessions(trained, registry, capsys) -> None:
    assert (
        main(['weights', 'register', 'tiny', str(trained), '--description', 'x']) == 0
    )
    stored = json.loads(registry.read_text())
    digest = hashlib.sha256(trained.read_bytes()).hexdigest()
    assert stored['weights']['tiny']['sha256'] == digest
    assert stored['weights']['tiny']['description'] == 'x'
    weights_registry.SESSION.clear()  # a new session reads the file
    torch.testing.assert_close(embed('tiny'), embed(trained))
    capsys.readouterr()
    assert main(['weights', 'list']) == 0
    out = capsys.readouterr().out
    assert 'tiny' in out and 'sphericalharmonics+siren L=3 8-d' in out
    assert str(registry) in out


def test_changed_file_is_refused(trained, tmp_path, capsys) -> None:
    copy = tmp_path / 'copy.ckpt'
    copy.write_bytes(trained.read_bytes())
    assert main(['weights', 'register', 'mine', str(copy)]) == 0
    checkpoint = torch.load(copy, weights_only=True)
    checkpoint['epoch'] = 99
    torch.save(checkpoint, copy)
    with pytest.raises(CheckpointError, match='changed since it was registered'):
        load_location_encoder('mine')
    capsys.readouterr()
    assert main(['weights', 'list', '--verify']) == 1
    assert '(CHANGED)' in capsys.readouterr().out
    copy.unlink()
    with pytest.raises(FileNotFoundError, match='does not exist any more'):
        load_location_encoder('mine')
    # Registering the file again accepts it.
    copy.write_bytes(trained.read_bytes())
    assert main(['weights', 'register', 'mine', str(copy), '--overwrite']) == 0
    torch.testing.assert_close(embed('mine'), embed(trained))


@pytest.mark.parametrize(
    'name',
    [
        'SatCLIP-ViT16-L40',
        'satclip-resnet50-l10',
        'microsoft/SatCLIP-ViT16-L40',
        'SatCLIP_Weights.MINE',
        'mine.ckpt',
        '../mine',
        '',
    ],
)
def test_names_that_would_shadow_or_mislead_are_refused(trained, name) -> None:
    with pytest.raises(WeightsRegistryError, match=r'not allowed|shadow|file'):
        register_weights(name, trained)


def test_cli_error_is_one_line(trained, capsys) -> None:
    assert main(['weights', 'register', 'SatCLIP-ViT16-L40', str(trained)]) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1
    assert 'microsoft/SatCLIP-ViT16-L40' in err


def test_taken_name_needs_overwrite(trained) -> None:
    register_weights('tiny', trained, persist=True)
    with pytest.raises(WeightsRegistryError, match='registered already'):
        register_weights('tiny', trained)
    register_weights('tiny', trained, overwrite=True)


def test_unknown_and_removed_names(trained, registry) -> None:
    register_weights('tiny-run', trained, persist=True)
    with pytest.raises(ValueError, match="Did you mean 'tiny-run'"):
        get_weight('tiny-rum')
    with pytest.raises(FileNotFoundError, match='satclip-tg weights list'):
        load_location_encoder('tiny-rum')
    assert main(['weights', 'remove', 'tiny-run']) == 0
    assert list_weights() == []
    assert json.loads(registry.read_text())['weights'] == {}
    with pytest.raises(ValueError, match='not a registered weights name'):
        unregister_weights('tiny-run')


def test_not_a_checkpoint_is_refused(tmp_path) -> None:
    bogus = tmp_path / 'bogus.pt'
    torch.save({'a': torch.zeros(2)}, bogus)
    with pytest.raises(CheckpointError):
        register_weights('bogus', bogus)
    with pytest.raises(FileNotFoundError):
        register_weights('missing', tmp_path / 'missing.ckpt')
    assert list_weights() == []


def test_damaged_registry_file_names_itself(registry) -> None:
    registry.parent.mkdir(parents=True)
    registry.write_text('{not json')
    with pytest.raises(WeightsRegistryError, match=str(registry)):
        list_weights()
    assert registry_path() == registry


def test_default_registry_location(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv('SATCLIP_TG_WEIGHTS')
    monkeypatch.setenv('XDG_CONFIG_HOME', str(tmp_path))
    assert registry_path() == tmp_path / 'satclip-tg' / 'weights.json'
