"""The random-init companion of checkpoints and the pretrained-vs-random comparison."""

import json
import math

import numpy as np
import pytest
import torch
from benchmark_toys import TINY_RECIPE, Bands, EastWest, save_checkpoint, task_fixture

from satclip_tg import build_location_encoder
from satclip_tg.cli import main
from satclip_tg.evaluation import (
    GeoCLIPLocationEncoder,
    compare_with_random_init,
    count_wins,
    evaluate,
    load_points,
    random_init_comparisons,
    random_init_encoder,
    run_benchmark,
    wins_summary,
)
from satclip_tg.evaluation.report import ResultRow, random_init_markdown, write_report
from satclip_tg.pretrained import load_location_encoder

toy_tasks = task_fixture(
    'random_init_toy_tasks', {'ri_bands': Bands, 'ri_east_west': EastWest}
)


def tiny_checkpoint(folder):
    """A tiny encoder in satclip-tg's checkpoint format (as SatCLIPTask writes)."""
    return save_checkpoint(folder / 'tiny.ckpt', seed=123)


def bench(checkpoint, cache_dir, **kwargs):
    settings = {
        'split': 'random',
        'probes': ['linear'],
        'num_points': 60,
        'num_folds': 2,
        'inner_folds': 2,
        'baselines': False,
        'cache_dir': cache_dir,
        'progress': False,
        'random_init_seeds': 2,
        **kwargs,
    }
    return run_benchmark(
        [f'tiny={checkpoint}', 'wrap'], ['ri_bands', 'ri_east_west'], **settings
    )


def cell(rows, encoder, task, metric):
    (row,) = [
        r for r in rows if (r.encoder, r.task, r.metric) == (encoder, task, metric)
    ]
    return row


def test_companion_follows_each_checkpoint_by_default(toy_tasks, tmp_path):
    result = bench(tiny_checkpoint(tmp_path), tmp_path / 'cache')
    encoders = list(dict.fromkeys(row.encoder for row in result.rows))
    # Right after its checkpoint; none for the bare encoding 'wrap'.
    assert encoders == ['tiny', 'tiny (random init)', 'wrap']
    companion = [row for row in result.rows if row.encoder == 'tiny (random init)']
    # One row per task, probe and metric, whatever the number of seeds.
    assert sorted((r.task, r.metric) for r in companion) == [
        ('ri_bands', 'mse'),
        ('ri_bands', 'r2'),
        ('ri_east_west', 'accuracy'),
        ('ri_east_west', 'macro_f1'),
    ]
    assert {r.dim for r in companion} == {TINY_RECIPE['embed_dim']}
    assert {r.folds for r in companion} == {2}
    manifest = result.manifest
    assert manifest['settings']['random init seeds'] == 2
    assert manifest['random_init']['seeds'] == [0, 1]
    entry = manifest['encoders']['tiny (random init)']
    assert entry['random_init_of'] == 'tiny' and entry['seeds'] == '0, 1'
    assert set(manifest['random_init_comparison']) == {'tiny'}
    assert 'wrap (random init)' not in manifest['encoders']


def test_no_companion_with_random_init_false(toy_tasks, tmp_path):
    result = bench(tiny_checkpoint(tmp_path), tmp_path / 'cache', random_init=False)
    assert {row.encoder for row in result.rows} == {'tiny', 'wrap'}
    assert result.manifest['settings']['random init seeds'] == 'off'
    assert result.manifest['random_init_comparison'] == {}
    with pytest.raises(ValueError, match='random_init=False'):
        compare_with_random_init(result.rows, 'tiny')


def test_random_init_encoder_rebuilds_the_architecture_with_fresh_weights(tmp_path):
    pretrained = load_location_encoder(tiny_checkpoint(tmp_path))
    coords = np.array([[8.55, 47.37], [-120.0, -33.0], [100.0, 10.0]])
    state = torch.get_rng_state()
    companion = random_init_encoder(pretrained, [5, 6], name='tiny (random init)')
    # Building it leaves the global torch generator where it was.
    assert torch.equal(torch.get_rng_state(), state)
    assert companion.name == 'tiny (random init)'
    assert list(companion.seed_embeddings) == [5, 6]
    for seed in (5, 6):
        # The same recipe built after torch.manual_seed(seed) gives the same
        # features: same architecture, the network's own initialisation.
        torch.manual_seed(seed)
        reference = build_location_encoder(**pretrained.config).eval()
        with torch.no_grad():
            expected = reference(torch.as_tensor(coords, dtype=torch.float32))
        features = companion.seed_embeddings[seed](coords)
        assert features.shape == (3, TINY_RECIPE['embed_dim'])
        np.testing.assert_array_equal(features, expected.double().numpy())
    with torch.no_grad():
        trained = pretrained(torch.as_tensor(coords, dtype=torch.float32)).numpy()
    assert not np.allclose(companion.seed_embeddings[5](coords), trained)
    assert not np.allclose(
        companion.seed_embeddings[5](coords), companion.seed_embeddings[6](coords)
    )
    np.testing.assert_array_equal(
        companion.embed(coords), companion.seed_embeddings[5](coords)
    )
    again = random_init_encoder(pretrained, [5, 6])
    np.testing.assert_array_equal(
        again.seed_embeddings[6](coords), companion.seed_embeddings[6](coords)
    )
    assert pretrained.config == TINY_RECIPE


def test_random_init_encoder_errors(tmp_path):
    pretrained = load_location_encoder(tiny_checkpoint(tmp_path))
    with pytest.raises(ValueError, match='at least one'):
        random_init_encoder(pretrained, [])
    with pytest.raises(ValueError, match='distinct'):
        random_init_encoder(pretrained, [1, 1])
    with pytest.raises(ValueError, match='no recipe'):
        random_init_encoder(GeoCLIPLocationEncoder(), [0])


def test_companion_averages_exactly_over_its_seeds(toy_tasks, tmp_path):
    checkpoint = tiny_checkpoint(tmp_path)
    cache = tmp_path / 'cache'
    result = bench(checkpoint, cache, seed=3, random_init_seeds=3)
    assert result.manifest['random_init']['seeds'] == [3, 4, 5]
    companion = random_init_encoder(load_location_encoder(checkpoint), [3, 4, 5])
    per_seed = result.manifest['random_init']['per_seed_means']['tiny (random init)']
    for task in ('ri_bands', 'ri_east_west'):
        points = load_points(task, 60, 3, cache_dir=cache)
        summaries = [
            evaluate(
                companion.seed_embeddings[seed](points.coords),
                points.labels,
                points.kind,
                coords=points.coords,
                split='random',
                probe='linear',
                num_folds=2,
                inner=2,
                seed=3,
            ).summary()
            for seed in (3, 4, 5)
        ]
        for metric in summaries[0]:
            means = [summary[metric][0] for summary in summaries]
            stds = [summary[metric][1] for summary in summaries]
            row = cell(result.rows, 'tiny (random init)', task, metric)
            assert row.mean == pytest.approx(np.mean(means), abs=1e-12)
            assert row.std == pytest.approx(np.mean(stds), abs=1e-12)
            assert per_seed[task]['linear'][metric] == pytest.approx(means, abs=1e-12)
        if task == 'ri_bands':
            # The seeds really differ: the mean is not one seed's value.
            assert len({summary['r2'][0] for summary in summaries}) == 3


def test_companion_is_deterministic(toy_tasks, tmp_path):
    checkpoint = tiny_checkpoint(tmp_path)
    first = bench(checkpoint, tmp_path / 'cache')
    torch.manual_seed(999)  # The global state must not matter.
    second = bench(checkpoint, tmp_path / 'cache')

    def numbers(result):
        return [
            (r.task, r.metric, r.mean, r.std)
            for r in result.rows
            if r.encoder == 'tiny (random init)'
        ]

    assert numbers(first) == numbers(second)


def row(encoder, task, kind, metric, mean, probe='linear', std=0.1):
    return ResultRow(
        encoder, task, kind, probe, 'random', metric, mean, std, 2, 9, 4, 0.0
    )


def constructed_rows():
    pretrained, baseline = 'demo', 'demo (random init)'
    return [
        # Regression, pretrained better on R² (and worse on MSE: ignored).
        row(pretrained, 'temp', 'regression', 'r2', 0.8),
        row(pretrained, 'temp', 'regression', 'mse', 0.9),
        row(baseline, 'temp', 'regression', 'r2', 0.6),
        row(baseline, 'temp', 'regression', 'mse', 0.1),
        # Classification, random init better on accuracy (macro-F1 ignored).
        row(pretrained, 'biome', 'classification', 'accuracy', 0.5),
        row(pretrained, 'biome', 'classification', 'macro_f1', 0.9),
        row(baseline, 'biome', 'classification', 'accuracy', 0.7),
        row(baseline, 'biome', 'classification', 'macro_f1', 0.1),
        # A tie, and a task without a value.
        row(pretrained, 'height', 'regression', 'r2', 0.4),
        row(baseline, 'height', 'regression', 'r2', 0.4),
        row(pretrained, 'empty', 'regression', 'r2', math.nan),
        row(baseline, 'empty', 'regression', 'r2', 0.3),
        # Another probe is counted on its own.
        row(pretrained, 'temp', 'regression', 'r2', 0.9, probe='mlp'),
        row(baseline, 'temp', 'regression', 'r2', 0.7, probe='mlp'),
        # An encoder without a companion.
        row('lonlat', 'temp', 'regression', 'r2', 0.1),
    ]


def test_comparison_verdicts_and_counts():
    rows = constructed_rows()
    verdicts = compare_with_random_init(rows, 'demo')
    assert [(v.task, v.probe, v.metric, v.better) for v in verdicts] == [
        ('temp', 'linear', 'r2', 'pretrained'),
        ('biome', 'linear', 'accuracy', 'random init'),
        ('height', 'linear', 'r2', 'tie'),
        ('empty', 'linear', 'r2', 'undecided'),
        ('temp', 'mlp', 'r2', 'pretrained'),
    ]
    assert verdicts[0].difference == pytest.approx(0.2)
    assert verdicts[1].difference == pytest.approx(-0.2)
    assert verdicts[0].random_init == 'demo (random init)'
    assert [v.pretrained_wins for v in verdicts] == [True, False, False, False, True]
    # Wins out of the tasks where both have a value, per probe.
    assert count_wins(verdicts) == {'linear': (1, 3), 'mlp': (1, 1)}
    assert wins_summary(verdicts) == (
        'demo beats its random initialisation on 1 of 3 tasks (linear probe), '
        '1 of 1 tasks (mlp probe)'
    )
    assert wins_summary([]) == ''
    assert list(random_init_comparisons(rows)) == ['demo']
    with pytest.raises(ValueError, match='no results of encoder'):
        compare_with_random_init(rows, 'missing')
    with pytest.raises(ValueError, match="'lonlat \\(random init\\)'"):
        compare_with_random_init(rows, 'lonlat')


def test_comparison_is_in_the_report(tmp_path):
    rows = constructed_rows()
    section = random_init_markdown(rows)
    assert section.startswith('## Pretrained vs random init')
    assert '### demo' in section
    assert 'demo beats its random initialisation on 1 of 3 tasks' in section
    assert '| task | probe | metric | demo | demo (random init) |' in section
    assert (
        '| temp | linear | R² | 0.800 ± 0.100 | 0.600 ± 0.100 | +0.200 | pretrained |'
        in section
    )
    assert '| empty | linear | R² | - | 0.300 ± 0.100 | - | undecided |' in section
    assert random_init_markdown(rows[-1:]) == ''
    write_report(tmp_path, rows, {}, {})
    assert section in (tmp_path / 'results.md').read_text()


def test_cli_flags(toy_tasks, tmp_path, capsys):
    checkpoint = tiny_checkpoint(tmp_path)
    arguments = [
        'benchmark',
        '--no-baselines',
        '--encoders',
        f'tiny={checkpoint}',
        '--tasks',
        'ri_bands,ri_east_west',
        '--split',
        'random',
        '--probe',
        'linear',
        '--num-points',
        '60',
        '--folds',
        '2',
        '--inner-folds',
        '2',
        '--jobs',
        '1',
        '--cache-dir',
        str(tmp_path / 'cache'),
        '--quiet',
    ]
    output = tmp_path / 'report'
    assert main([*arguments, '--random-init-seeds', '2', '--output', str(output)]) == 0
    printed = capsys.readouterr().out
    assert '| task | metric | tiny | tiny (random init) |' in printed
    assert 'tiny beats its random initialisation on' in printed
    assert '## Pretrained vs random init' in (output / 'results.md').read_text()
    manifest = json.loads((output / 'manifest.json').read_text())
    assert manifest['random_init']['seeds'] == [0, 1]
    comparison = manifest['random_init_comparison']['tiny']
    assert comparison['wins']['linear']['tasks'] == 2
    assert len(comparison['verdicts']) == 2
    assert main([*arguments, '--no-random-init']) == 0
    printed = capsys.readouterr().out
    assert 'random init' not in printed
    assert main([*arguments, '--random-init-seeds', '0']) == 1
    assert 'random_init_seeds must be at least 1' in capsys.readouterr().err


def test_a_checkpoint_path_with_a_plus_is_not_encoding_plus_network(tmp_path) -> None:
    from satclip_tg.evaluation.encoders import resolve_encoder

    folder = tmp_path / 'lr1e-4+seed1'
    folder.mkdir()
    path = tiny_checkpoint(folder)
    resolved = resolve_encoder(f'demo={path}')
    assert resolved.name == 'demo' and resolved.info['source'] == str(path)
    assert resolved.pretrained is not None
