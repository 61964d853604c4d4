"""No silent wrong answers, and kills leave nothing behind.

Failed and flagged benchmark rows, the low-n rule, the all-or-nothing report
and the checks of points files; everything on tiny synthetic data.
"""

import csv
import json
import math
import os
import re

import numpy as np
import pytest
from benchmark_toys import Bands, EastWest, Unavailable, save_checkpoint, task_fixture

from satclip_tg.cli import main
from satclip_tg.datamodules import PointLabelDataModule
from satclip_tg.datamodules.points import read_point_csv
from satclip_tg.datasets.downstream import readers as benchmark_data
from satclip_tg.datasets.splits import Fold
from satclip_tg.evaluation import (
    MIN_TEST_POINTS,
    MIN_TRAIN_POINTS,
    ProbeConfig,
    ProbeDivergedError,
    check_point_labels,
    compare_with_random_init,
    count_wins,
    evaluate,
    fit_probe,
    load_points,
    low_n_reason,
    run_benchmark,
    undecided_summary,
)
from satclip_tg.evaluation import report as report_module
from satclip_tg.evaluation.report import (
    ResultRow,
    markdown_table,
    problems_markdown,
    random_init_markdown,
    write_report,
)
from satclip_tg.evaluation.runner import _combine_seeds


class FractionalClasses:
    """A broken plugin task: class labels 0.5 apart, one of them NaN."""

    task_type = 'classification'
    num_classes = 3

    def load(self, num_points, seed):
        coords = benchmark_data.sample_sphere(num_points, seed)
        labels = np.arange(num_points) % 3 / 2
        labels[4] = math.nan
        return coords, labels


toy_tasks = task_fixture(
    'hardening_toy_tasks',
    {
        'hd_bands': Bands,
        'hd_east_west': EastWest,
        'hd_fractional': FractionalClasses,
        'hd_missing': Unavailable,
    },
)


def bench(tmp_path, encoders=('wrap',), tasks=('hd_bands', 'hd_east_west'), **kw):
    settings = {
        'split': 'random',
        'probes': ['linear'],
        'num_points': 60,
        'num_folds': 2,
        'inner_folds': 2,
        'baselines': False,
        'cache_dir': tmp_path / 'cache',
        'progress': False,
        'random_init_seeds': 2,
        **kw,
    }
    return run_benchmark(list(encoders), list(tasks), **settings)


def row(encoder, task, metric, mean, status='ok', note='', kind='regression'):
    return ResultRow(
        encoder,
        task,
        kind,
        'linear',
        'random',
        metric,
        mean,
        0.1,
        2,
        9,
        4,
        0.0,
        status,
        note,
    )


# --- 1. failed rows: NaN features, diverged probes, undefined metrics -------
def test_nan_features_fail_the_rows_not_the_run(toy_tasks, tmp_path):
    checkpoint = save_checkpoint(tmp_path / 'exploded.ckpt', explode=True)
    output = tmp_path / 'report'
    result = bench(tmp_path, [f'broken={checkpoint}', 'wrap'], output=output)
    broken = [r for r in result.rows if r.encoder == 'broken']
    assert len(broken) == 4 and {r.status for r in broken} == {'failed'}
    assert all(math.isnan(r.mean) and math.isnan(r.std) for r in broken)
    assert re.match(
        r'the encoder returned NaN or infinite features for \d+ of 60 points, the '
        r'first at index \d+ \(lon -?[\d.]+, lat -?[\d.]+\)$',
        broken[0].note,
    )
    # The companion (fresh weights) and the other encoder are evaluated.
    others = [r for r in result.rows if r.encoder != 'broken']
    assert {r.status for r in others} == {'ok'}
    # Never a win: the comparison is undecided and says why.
    verdicts = compare_with_random_init(result.rows, 'broken')
    assert {v.better for v in verdicts} == {'undecided'}
    assert verdicts[0].failure.startswith('broken failed: the encoder returned')
    assert count_wins(verdicts) == {'linear': (0, 0)}
    markdown = (output / 'results.md').read_text()
    assert '| failed: the encoder returned NaN or infinite features' in markdown
    assert '## Failed and flagged results' in markdown
    assert 'Undecided, so not counted: 2 tasks (linear probe' in markdown
    with (output / 'results.csv').open() as handle:
        written = list(csv.DictReader(handle))
    assert {r['status'] for r in written if r['encoder'] == 'broken'} == {'failed'}
    manifest = json.loads((output / 'manifest.json').read_text())
    assert {p['encoder'] for p in manifest['problems']} == {'broken'}
    comparison = manifest['random_init_comparison']['broken']
    assert comparison['wins']['linear'] == {'wins': 0, 'tasks': 0}
    assert comparison['undecided'].startswith('Undecided')


def test_evaluate_names_the_first_point_with_nan_features():
    rng = np.random.default_rng(0)
    coords = np.column_stack([rng.uniform(-180, 180, 40), rng.uniform(-90, 90, 40)])
    features = rng.normal(size=(40, 3))
    features[7, 1] = math.inf
    features[9, 0] = math.nan
    result = evaluate(
        features, coords[:, 1], 'regression', coords=coords, split='random'
    )
    assert result.folds == []
    lon, lat = coords[7]
    assert result.invalid == (
        'the encoder returned NaN or infinite features for 2 of 40 points, the '
        f'first at index 7 (lon {lon:g}, lat {lat:g})'
    )
    assert result.assess('r2') == ('failed', result.invalid)
    assert all(math.isnan(v) for v in result.summary()['r2'])


@pytest.mark.parametrize('kind', ['regression', 'classification'])
def test_a_diverged_probe_fails_instead_of_scoring(kind):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 4))
    y = x[:, 0] if kind == 'regression' else (x[:, 0] > 0).astype(np.int64)
    exploding = ProbeConfig(mlp_lr=1e14, mlp_epochs=3)
    # Before: a diverged classifier still returned the argmax of NaN logits.
    with pytest.raises(ProbeDivergedError, match='mlp probe diverged: 20 of 20'):
        fit_probe('mlp', kind, x[:60], y[:60], x[60:], [], config=exploding)
    result = evaluate(
        x, y, kind, split='random', probe='mlp', num_folds=2, config=exploding
    )
    assert set(result.failed) == {'fold 0', 'fold 1'} and result.folds == []
    metric = 'r2' if kind == 'regression' else 'accuracy'
    status, note = result.assess(metric)
    assert status == 'failed' and 'fold 0: the mlp probe diverged' in note


def test_a_diverged_grid_value_is_never_chosen(monkeypatch):
    from satclip_tg.evaluation import probes

    real = probes._ridge

    def ridge_with_a_diverged_penalty(x, y, x_test, folds, grid):
        predictions = real(x, y, x_test, folds, grid)
        for fold_predictions in predictions.validation[-1]:
            fold_predictions[0] = math.nan  # the largest penalty diverged
        return predictions

    monkeypatch.setattr(probes, '_ridge', ridge_with_a_diverged_penalty)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 3))
    y = rng.normal(size=60)  # pure noise: the largest penalty would win
    folds = [
        Fold('a', np.arange(30, 60), np.arange(30)),
        Fold('b', np.arange(30), np.arange(30, 60)),
    ]
    fit = fit_probe('linear', 'regression', x, y, x[:5], folds)
    grid = ProbeConfig().ridge_penalties
    assert fit.inner_scores[grid[-1]] == -math.inf
    assert fit.penalty != grid[-1] and np.isfinite(fit.predictions).all()


def test_a_metric_undefined_on_some_folds_is_flagged_on_all_failed():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = rng.normal(size=60)
    y[:30] = 1.0  # the test targets of fold 'a' are constant: R² undefined
    folds = [
        Fold('a', np.arange(30, 60), np.arange(30)),
        Fold('b', np.arange(30), np.arange(30, 60)),
    ]
    result = evaluate(x, y, 'regression', folds=folds, split='random')
    assert result.assess('r2') == (
        'flagged',
        'r2 undefined on 1 of 2 folds (constant test targets), left out of the mean',
    )
    assert result.assess('mse') == ('ok', '')
    constant = evaluate(x, np.ones(60), 'regression', folds=folds, split='random')
    assert constant.assess('r2') == (
        'failed',
        'r2 undefined on every fold (constant test targets)',
    )


def test_every_fold_skipped_is_a_failure_with_the_reason():
    x = np.random.default_rng(0).normal(size=(40, 2))
    labels = np.repeat([0, 1], 20)
    folds = [
        Fold('zero', np.arange(20, 40), np.arange(20)),
        Fold('one', np.arange(20), np.arange(20, 40)),
    ]
    result = evaluate(x, labels, 'classification', folds=folds, split='random')
    assert result.assess('accuracy') == (
        'failed',
        'every fold skipped (no test label occurs in the training rows)',
    )


def test_evaluate_refuses_bad_labels():
    x = np.zeros((12, 2))
    with pytest.raises(ValueError, match=r'1 labels are not finite.*index 3'):
        evaluate(x, np.where(np.arange(12) == 3, np.nan, 1.0), 'regression')
    with pytest.raises(ValueError, match=r'not integers.*index 0'):
        evaluate(x, np.full(12, 0.5), 'classification')


def test_failed_rows_are_never_ranked_and_flagged_rows_say_so():
    rows = [
        # A failed row with a (stale) finite mean, as read back from a file.
        row('a', 't', 'r2', 0.9, 'failed', 'probe diverged | fold 1'),
        row('b', 't', 'r2', 0.5, 'flagged', 'low-n: 1 of 2 folds too small'),
        row('c', 't', 'r2', 0.4),
        row('a', 't', 'mse', math.nan, 'failed', 'probe diverged'),
        row('b', 't', 'mse', 0.5, 'flagged', 'r2 undefined on 1 of 2 folds'),
        row('c', 't', 'mse', 0.6),
    ]
    table = markdown_table(rows, 'linear').splitlines()
    assert table[2] == (
        '| t | R² | failed: probe diverged \\| fold 1 | **0.500 ± 0.100** (low-n) '
        '| 0.400 ± 0.100 |'
    )
    assert table[3] == (
        '| t | MSE (standardized) | failed: probe diverged '
        '| **0.500 ± 0.100** (flagged) | 0.600 ± 0.100 |'
    )
    notes = problems_markdown(rows)
    assert '2 failed and 2 flagged' in notes
    assert '- failed: `a`, t, linear probe (R²): probe diverged | fold 1' in notes
    assert problems_markdown(rows[2:3]) == ''


def test_a_failed_row_is_undecided_in_the_comparison_and_said_so():
    companion = 'demo (random init)'
    rows = [
        row('demo', 'temp', 'r2', 0.8),
        row(companion, 'temp', 'r2', 0.6),
        # Stale finite mean, failed status: still never a win.
        row('demo', 'rain', 'r2', 0.9, 'failed', 'the linear probe diverged'),
        row(companion, 'rain', 'r2', 0.1),
    ]
    verdicts = compare_with_random_init(rows, 'demo')
    assert [v.better for v in verdicts] == ['pretrained', 'undecided']
    assert verdicts[1].failure == 'demo failed: the linear probe diverged'
    assert count_wins(verdicts) == {'linear': (1, 1)}
    assert undecided_summary(verdicts) == (
        'Undecided, so not counted: 1 task (linear probe: rain)'
    )
    section = random_init_markdown(rows)
    assert (
        '| rain | linear | R² | failed | 0.100 ± 0.100 | - | undecided (demo '
        'failed: the linear probe diverged) |' in section
    )
    assert 'on 1 of 1 tasks (linear probe). Undecided, so not counted' in section


def test_companion_seeds_that_failed_are_left_out_and_flagged():
    ok = {'r2': (0.5, 0.1, 'ok', ''), 'mse': (0.4, 0.2, 'ok', '')}
    other = {'r2': (0.7, 0.3, 'ok', ''), 'mse': (0.2, 0.0, 'ok', '')}
    failed = {
        'r2': (math.nan, math.nan, 'failed', 'NaN features'),
        'mse': (math.nan, math.nan, 'failed', 'NaN features'),
    }
    combined = _combine_seeds([0, 1, 2], [ok, failed, other])
    mean, std, status, note = combined['r2']
    assert (mean, std) == pytest.approx((0.6, 0.2))
    assert status == 'flagged'
    assert note == 'seed 1 failed (NaN features); averaged over 2 of 3 seeds'
    assert _combine_seeds([0, 1], [failed, failed])['mse'][2:] == (
        'failed',
        'every seed failed (NaN features)',
    )
    assert _combine_seeds([0, 1], [ok, other])['r2'][2:] == ('ok', '')


# --- 2. too few points per fold ---------------------------------------------
def test_the_low_n_rule():
    assert (MIN_TEST_POINTS, MIN_TRAIN_POINTS) == (10, 20)
    assert low_n_reason(20, 10) is None
    assert low_n_reason(20, 10, train_classes=2) is None
    assert low_n_reason(20, 9) == '9 test points (fewer than 10)'
    assert low_n_reason(19, 10) == '19 training points (fewer than 20)'
    assert low_n_reason(50, 50, train_classes=1) == 'training points of a single class'


def test_small_folds_are_flagged_low_n():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(45, 2))
    folds = [
        Fold('big', np.arange(5, 45), np.arange(5)),
        Fold('small', np.arange(5), np.arange(5, 45)),
    ]
    result = evaluate(x, x[:, 0], 'regression', folds=folds, split='random')
    assert result.low_n == {
        'big': '5 test points (fewer than 10)',
        'small': '5 training points (fewer than 20)',
    }
    status, note = result.assess('mse')
    assert status == 'flagged' and note.startswith('low-n: 2 of 2 folds too small')


def test_a_run_whose_folds_are_all_too_small_is_refused(toy_tasks, tmp_path):
    output = tmp_path / 'report'
    # 30 points in 5 folds: 6 test points per fold.
    with pytest.raises(ValueError) as raised:
        bench(tmp_path, num_points=30, num_folds=5, output=output)
    message = str(raised.value)
    assert message.startswith('refusing to run, nothing was evaluated')
    assert (
        'task hd_bands: every fold is too small (30 points; test points per ' in message
    )
    assert 'fold: 6, 6, 6, 6, 6' in message
    assert 'use more --num-points (now 30) or fewer --folds (now 5)' in message
    assert not output.exists()


def test_folds_that_cannot_be_made_are_refused_with_the_fix(toy_tasks, tmp_path):
    with pytest.raises(ValueError, match='cannot make the folds: task hd_bands') as e:
        bench(tmp_path, split='spatial-block', block_size=90.0, num_folds=9)
    assert 'a smaller --block-size (now 90)' in str(e.value)


def test_the_cli_refuses_small_folds_and_writes_nothing(toy_tasks, tmp_path, capsys):
    output = tmp_path / 'report'
    arguments = [
        'benchmark', '--no-baselines', '--encoders', 'wrap', '--tasks', 'hd_bands',
        '--split', 'spatial-block', '--num-points', '40', '--folds', '5',
        '--cache-dir', str(tmp_path / 'cache'), '--output', str(output), '--quiet',
    ]  # fmt: skip
    assert main(arguments) == 1
    error = capsys.readouterr().err
    assert 'too few points per fold' in error and 'a bigger --block-size' in error
    assert not output.exists()


# --- 3. the report appears whole or not at all --------------------------------
def test_a_run_that_fails_while_writing_leaves_nothing(
    toy_tasks, tmp_path, monkeypatch
):
    output = tmp_path / 'report'

    def broken_chart(path, rows, metric):
        raise RuntimeError('disk full')

    monkeypatch.setattr(report_module, '_write_chart', broken_chart)
    with pytest.raises(RuntimeError, match='disk full'):
        bench(tmp_path, output=output)
    # Before: results.csv and results.md were left, so the rerun needed
    # --overwrite. Now neither the folder nor a staging folder is left.
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cache']
    monkeypatch.undo()
    result = bench(tmp_path, output=output)  # no --overwrite needed
    assert {p.name for p in output.iterdir()} == {p.name for p in result.files}


def test_a_run_that_evaluated_nothing_writes_nothing(toy_tasks, tmp_path, capsys):
    output = tmp_path / 'report'
    result = bench(tmp_path, tasks=['hd_missing'], output=output)
    assert result.rows == [] and result.files == []
    assert not output.exists()
    arguments = [
        'benchmark', '--no-baselines', '--encoders', 'wrap', '--tasks', 'hd_missing',
        '--cache-dir', str(tmp_path / 'cache'), '--output', str(output), '--quiet',
    ]  # fmt: skip
    assert main(arguments) == 1
    assert 'nothing was evaluated; no report was written' in capsys.readouterr().err
    assert not output.exists()
    with pytest.raises(ValueError, match='nothing was evaluated'):
        write_report(output, [], {}, {})


def test_a_new_report_replaces_the_old_one_whole(tmp_path):
    output = tmp_path / 'report'
    old = [row('a', 't', 'accuracy', 0.5, kind='classification')]
    write_report(output, old, {}, {})
    (output / 'notes.txt').write_text('mine')
    assert (output / 'accuracy.png').exists()
    new = [row('a', 't', 'r2', 0.7)]
    files = write_report(output, new, {}, {})
    names = sorted(p.name for p in output.iterdir())
    # The old chart of a metric no longer evaluated is gone, other files stay.
    assert names == [
        'manifest.json',
        'notes.txt',
        'r2.png',
        'results.csv',
        'results.md',
    ]
    assert sorted(p.name for p in files) == sorted(set(names) - {'notes.txt'})
    assert '0.700' in (output / 'results.md').read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith('.partial')]


def test_a_report_into_an_empty_folder_is_one_rename(tmp_path):
    output = tmp_path / 'empty'
    output.mkdir()
    write_report(output, [row('a', 't', 'r2', 0.7)], {}, {})
    assert (output / 'results.csv').exists()
    # The folder has a plain mkdir's permissions, not a private temp folder's.
    umask = os.umask(0)
    os.umask(umask)
    assert output.stat().st_mode & 0o777 == 0o777 & ~umask


# --- 4. points files with bad cells -------------------------------------------
@pytest.mark.parametrize(
    ('kind', 'text', 'expected'),
    [
        (
            'regression',
            '1,2,\n3,4,nan\n5,6,inf\n7,8,warm\n',
            '4 bad rows (line numbers as in the file, the header being line 1): '
            "line 2, column 'label': empty; line 3, column 'label': nan is not a "
            "finite number; line 4, column 'label': inf is not a finite number; "
            "line 5, column 'label': 'warm' is not a number",
        ),
        (
            'regression',
            '181,0,1\n0,-91,1\n,0,1\nnan,0,1\n',
            '4 bad rows (line numbers as in the file, the header being line 1): '
            "line 2, column 'lon': 181 is outside [-180, 180] degrees; line 3, "
            "column 'lat': -91 is outside [-90, 90] degrees; line 4, column "
            "'lon': empty; line 5, column 'lon': nan is not a finite number",
        ),
        (
            'classification',
            '0,0,0\n0,0,1.5\n0,0,-1\n0,0,3\n0,0,\n0,0,sea\n0,0,2.0\n',
            '5 bad rows (line numbers as in the file, the header being line 1): '
            "line 3, column 'label': 1.5 is not an integer class index; line 4, "
            "column 'label': -1 is a negative class index; line 5, column "
            "'label': 3 is not below num_classes = 3; line 6, column 'label': "
            "empty; line 7, column 'label': 'sea' is not a number, but the other "
            'labels are class indices',
        ),
        (
            'classification',
            '0,0,sea\n0,0,land\n\n0,0,nan\n0,0,\n',
            # The blank line 4 counts: line numbers are those of the file.
            '2 bad rows (line numbers as in the file, the header being line 1): '
            "line 5, column 'label': 'nan' is a number among class names; "
            "line 6, column 'label': empty",
        ),
    ],
    ids=['regression-labels', 'coordinates', 'class-indices', 'class-names'],
)
def test_bad_cells_are_named_by_line_and_column(tmp_path, kind, text, expected):
    path = tmp_path / 'points.csv'
    path.write_text('lon,lat,label\n' + text)
    with pytest.raises(ValueError) as raised:
        read_point_csv(path, kind, num_classes=3 if kind == 'classification' else None)
    assert str(raised.value) == f'{path}: {expected}'


def test_many_bad_rows_are_counted_and_the_list_is_cut(tmp_path):
    path = tmp_path / 'points.csv'
    path.write_text('lon,lat,label\n' + '0,0,\n' * 25 + '0,0,1\n')
    with pytest.raises(
        ValueError, match=r'25 bad rows .*line 11, .*; \.\.\. and 15 more$'
    ):
        read_point_csv(path, 'regression')


def test_good_class_labels_still_read(tmp_path):
    path = tmp_path / 'points.csv'
    path.write_text('lon,lat,label\n0,0,0\n1,1,2.0\n')
    _, labels, classes = read_point_csv(path, 'classification', num_classes=4)
    assert labels.tolist() == [0, 2] and classes == ('0', '1', '2', '3')
    path.write_text('lon,lat,label\n0,0,sea\n1,1,land\n')
    with pytest.raises(ValueError, match='2 class names but num_classes = 1'):
        read_point_csv(path, 'classification', num_classes=1)


def test_the_datamodule_checks_labels_against_num_classes(tmp_path):
    path = tmp_path / 'points.csv'
    lines = [f'{i},{i % 80},{i % 4}' for i in range(40)]
    path.write_text('lon,lat,label\n' + '\n'.join(lines) + '\n')
    module = PointLabelDataModule(
        path=str(path), task_type='classification', num_classes=3, split='random'
    )
    with pytest.raises(ValueError, match=r"10 bad rows .*line 5, column 'label': 3 is"):
        module.setup('fit')
    PointLabelDataModule(
        path=str(path), task_type='classification', num_classes=4, split='random'
    ).setup('fit')


def test_a_task_returning_bad_labels_is_refused_by_name(toy_tasks, tmp_path):
    with pytest.raises(ValueError) as raised:
        load_points('hd_fractional', 12, cache_dir=tmp_path)
    assert str(raised.value) == (
        "task 'hd_fractional': 4 bad rows (rows counted from 0): row 1, column "
        "'label': 0.5 is not an integer class index; row 4, column 'label': nan "
        "is not a finite number; row 7, column 'label': 0.5 is not an integer "
        "class index; row 10, column 'label': 0.5 is not an integer class index"
    )
    # Nothing was cached, and the benchmark runs the other tasks.
    assert not list((tmp_path / 'tasks').glob('hd_fractional*'))
    result = bench(tmp_path, tasks=['hd_fractional', 'hd_bands'])
    assert {r.task for r in result.rows} == {'hd_bands'}
    assert result.unavailable['task hd_fractional'].startswith('invalid points: ')


def test_check_point_labels_on_arrays():
    coords = np.array([[0.0, 0.0], [200.0, 0.0], [0.0, 0.0]])
    check_point_labels(coords[[0, 2]], np.array([1, 0]), 'classification', 2)
    with pytest.raises(
        ValueError,
        match=r"2 bad rows .*row 1, column 'lon'.*row 2, column 'label': 2 is not",
    ):
        check_point_labels(coords, np.array([1, 0, 2]), 'classification', 2)
    with pytest.raises(ValueError, match='coords must be'):
        check_point_labels(coords, np.array([1.0]), 'regression')
