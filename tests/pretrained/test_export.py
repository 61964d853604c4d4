"""``satclip-tg export --format torchgeo`` and `satclip_tg.export`."""

import json
import pathlib

import pytest
import torch
from satclip_checkpoints import random_points, task_layout_checkpoint, torchgeo_model
from torchgeo.models import SatCLIP

from satclip_tg import build_location_encoder
from satclip_tg.cli import main
from satclip_tg.export import ExportError, export_torchgeo, torchgeo_init_args
from satclip_tg.pretrained import load_location_encoder

TINY_ARGS = {'legendre_polys': 3, 'capacity': 8, 'embed_dim': 8, 'num_hidden_layers': 2}


def load_torchgeo(path: pathlib.Path, init_args: dict[str, int]) -> SatCLIP:
    model = SatCLIP(**init_args)
    model.load_state_dict(torch.load(path, weights_only=True), strict=True)
    return model.eval()


def test_cli_export_loads_into_torchgeo_float32(trained, tmp_path, capsys) -> None:
    output = tmp_path / 'tiny_torchgeo.pt'
    args = ['export', '--format', 'torchgeo', '--encoder', str(trained)]
    assert main([*args, '--output', str(output)]) == 0
    out = capsys.readouterr().out
    assert (
        'torchgeo.models.SatCLIP(legendre_polys=3, capacity=8, embed_dim=8, '
        'num_hidden_layers=2)' in out
    )
    sidecar = json.loads((tmp_path / 'tiny_torchgeo.pt.json').read_text())
    assert sidecar['init_args'] == TINY_ARGS
    assert sidecar['model_card']['data']['tiles'] == 12
    state = torch.load(output, weights_only=True)
    assert all(key.startswith('nnet.') for key in state)
    assert {value.dtype for value in state.values()} == {torch.float32}
    model = load_torchgeo(output, sidecar['init_args'])
    # TorchGeo clamps latitudes to +-89.95; compare away from the poles.
    points = random_points(2000, seed=4, max_lat=89.9).float()
    with torch.no_grad():
        ours = load_location_encoder(trained)(points)
        theirs = model(points)
    # float32: the two harmonics algorithms round differently (~1e-7), and
    # the first sine (w0 = 30) amplifies that.
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-5)


def test_float64_export_matches_under_float64_default_dtype(trained, tmp_path) -> None:
    output = tmp_path / 'tiny64.pt'
    result = export_torchgeo(trained, output, dtype=torch.float64)
    assert {v.dtype for v in torch.load(output, weights_only=True).values()} == {
        torch.float64
    }
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # TorchGeo's harmonics follow it
    try:
        model = load_torchgeo(output, result.init_args)
    finally:
        torch.set_default_dtype(previous)
    points = random_points(2000, seed=5, max_lat=89.9)
    with torch.no_grad():
        ours = load_location_encoder(trained, dtype=torch.float64)(points)
        theirs = model(points)
    assert (theirs - ours).abs().max() < 1e-9


def test_official_checkpoint_round_trip(tmp_path) -> None:
    reference = torchgeo_model(4, capacity=16, embed_dim=8, num_hidden_layers=1)
    source = tmp_path / 'state.pt'
    torch.save(reference.state_dict(), source)
    result = export_torchgeo(source, tmp_path / 'again.pt', dtype=torch.float64)
    assert result.init_args == {
        'legendre_polys': 4,
        'capacity': 16,
        'embed_dim': 8,
        'num_hidden_layers': 1,
    }
    exported = torch.load(result.output, weights_only=True)
    for key, value in reference.state_dict().items():
        assert torch.equal(exported[key], value)


@pytest.mark.parametrize(
    ('encoding', 'network', 'encoding_args', 'network_args', 'problem'),
    [
        ('wrap', 'siren', {}, {}, "encoding is 'wrap'"),
        ('sphericalharmonics', 'fcnet', {'legendre_polys': 3}, {}, "is 'fcnet'"),
        (
            'sphericalharmonics',
            'siren',
            {'legendre_polys': 3, 'convention': 'orthonormal'},
            {},
            'orthonormal',
        ),
        ('sphericalharmonics', 'siren', {'legendre_polys': 3}, {'w0': 2.0}, 'w0=2'),
        (
            'sphericalharmonics',
            'siren',
            {'legendre_polys': 3},
            {'w0_initial': 10.0},
            'w0=10',
        ),
    ],
)
def test_unrepresentable_encoders_are_refused(
    encoding, network, encoding_args, network_args, problem, tmp_path
) -> None:
    encoder = build_location_encoder(
        encoding,
        network,
        embed_dim=4,
        positional_encoding_args=encoding_args,
        network_args={'hidden_dim': 8, **network_args},
    )
    with pytest.raises(ExportError, match=problem):
        torchgeo_init_args(encoder)
    with pytest.raises(ExportError, match='cannot be exported'):
        export_torchgeo(encoder, tmp_path / 'out.pt')
    assert list(tmp_path.iterdir()) == []


def test_cli_refusal_is_one_line_and_writes_nothing(tmp_path, capsys) -> None:
    encoder = build_location_encoder(
        'sphericalharmonics',
        'fcnet',
        embed_dim=4,
        positional_encoding_args={'legendre_polys': 3},
    )
    source = tmp_path / 'fcnet.ckpt'
    torch.save(task_layout_checkpoint(encoder), source)
    output = tmp_path / 'out.pt'
    args = ['export', '--format', 'torchgeo', '--encoder', str(source)]
    assert main([*args, '--output', str(output)]) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1
    assert "network is 'fcnet'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['fcnet.ckpt']


def test_existing_output_needs_overwrite(trained, tmp_path) -> None:
    output = tmp_path / 'out.pt'
    export_torchgeo(trained, output)
    before = output.read_bytes()
    with pytest.raises(FileExistsError, match='--overwrite'):
        export_torchgeo(trained, output)
    assert output.read_bytes() == before
    export_torchgeo(trained, output, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out.pt', 'out.pt.json']


def test_dropout_note(tmp_path) -> None:
    encoder = build_location_encoder(
        'sphericalharmonics',
        'siren',
        embed_dim=4,
        positional_encoding_args={'legendre_polys': 2},
        network_args={'hidden_dim': 8, 'dropout': 0.1},
    )
    result = export_torchgeo(encoder, tmp_path / 'out.pt')
    assert any('dropout 0.1' in note for note in result.notes)
    assert any('89.95' in note for note in result.notes)
