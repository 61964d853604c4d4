"""Probes, penalty selection by inner CV, metrics and the evaluation API."""

import numpy as np
import pytest
import torch

from satclip_tg.datasets.splits import random_kfold
from satclip_tg.evaluation.evaluation import (
    accuracy,
    evaluate,
    inner_folds,
    macro_f1,
    mse,
    r2_score,
)
from satclip_tg.evaluation.probes import ProbeConfig, fit_probe

FAST = ProbeConfig(
    mlp_epochs=8,
    mlp_batch_size=64,
    mlp_hidden_dim=16,
    logistic_max_iter=50,
)


def linear_data(n=200, d=5, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    return x, x @ w + 3.0 + noise * rng.normal(size=n)


def test_ridge_matches_scikit_learn():
    sklearn = pytest.importorskip('sklearn.linear_model')
    x, y = linear_data()
    config = ProbeConfig(ridge_penalties=(0.5,))
    fit = fit_probe('linear', 'regression', x, y, x[:20], [], config=config)
    # Ours: mean squared error + penalty |w|^2 on standardized features and
    # target; scikit-learn: sum of squares + alpha |w|^2, so alpha = n * penalty.
    xs = (x - x.mean(0)) / x.std(0)
    ys = (y - y.mean()) / y.std()
    reference = sklearn.Ridge(alpha=len(x) * 0.5).fit(xs, ys)
    expected = reference.predict(xs[:20]) * y.std() + y.mean()
    np.testing.assert_allclose(fit.predictions, expected, rtol=1e-8, atol=1e-8)
    assert fit.penalty == 0.5


def test_logistic_regression_matches_scikit_learn():
    sklearn = pytest.importorskip('sklearn.linear_model')
    rng = np.random.default_rng(1)
    x = rng.normal(size=(150, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)
    config = ProbeConfig(logistic_penalties=(1e-2,), logistic_max_iter=200)
    fit = fit_probe('linear', 'classification', x, y, x, [], config=config)
    xs = (x - x.mean(0)) / x.std(0)
    # Mean cross-entropy + lambda |W|^2  <=>  C = 1 / (2 n lambda).
    reference = sklearn.LogisticRegression(C=1 / (2 * 150 * 1e-2), tol=1e-8).fit(xs, y)
    agreement = np.mean(fit.predictions == reference.predict(xs))
    assert agreement > 0.97


def test_metrics_match_scikit_learn():
    metrics = pytest.importorskip('sklearn.metrics')
    rng = np.random.default_rng(2)
    truth, prediction = rng.normal(size=30), rng.normal(size=30)
    assert r2_score(truth, prediction) == pytest.approx(
        metrics.r2_score(truth, prediction)
    )
    assert mse(truth, prediction) == pytest.approx(
        metrics.mean_squared_error(truth, prediction)
    )
    labels, guesses = rng.integers(0, 4, 40), rng.integers(0, 5, 40)
    assert accuracy(labels, guesses) == pytest.approx(
        metrics.accuracy_score(labels, guesses)
    )
    assert macro_f1(labels, guesses) == pytest.approx(
        metrics.f1_score(labels, guesses, average='macro')
    )
    assert np.isnan(r2_score([1.0, 1.0], [1.0, 2.0]))


def test_inner_cv_picks_a_small_penalty_for_a_clean_signal():
    x, y = linear_data(noise=0.01)
    folds = random_kfold(len(x), 3, seed=0)
    fit = fit_probe('linear', 'regression', x, y, x, folds)
    assert fit.penalty == min(ProbeConfig().ridge_penalties)
    assert set(fit.inner_scores) == set(ProbeConfig().ridge_penalties)
    assert max(fit.inner_scores, key=fit.inner_scores.__getitem__) == fit.penalty


def test_inner_cv_picks_a_large_penalty_for_pure_noise():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 40))
    y = rng.normal(size=60)
    fit = fit_probe('linear', 'regression', x, y, x, random_kfold(60, 3, seed=0))
    assert fit.penalty == max(ProbeConfig().ridge_penalties)


def test_selection_uses_only_the_training_rows():
    # The test rows carry a different relation: they cannot affect the choice.
    x, y = linear_data(noise=0.01)
    folds = random_kfold(len(x), 3, seed=0)
    first = fit_probe('linear', 'regression', x, y, x[:5], folds)
    second = fit_probe('linear', 'regression', x, y, -50 * x[:5], folds)
    assert first.inner_scores == second.inner_scores


def test_mlp_learns_what_a_linear_probe_cannot():
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, size=(400, 2))
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)  # XOR
    folds = random_kfold(300, 2, seed=0)
    config = ProbeConfig(
        mlp_epochs=40, mlp_batch_size=64, mlp_hidden_dim=32, mlp_penalties=(1e-5, 1e-3)
    )
    mlp = fit_probe(
        'mlp', 'classification', x[:300], y[:300], x[300:], folds, config=config
    )
    linear = fit_probe('linear', 'classification', x[:300], y[:300], x[300:], folds)
    assert accuracy(y[300:], mlp.predictions) > 0.85
    assert accuracy(y[300:], linear.predictions) < 0.7
    assert mlp.penalty in config.mlp_penalties


def test_mlp_regression_and_labels_are_returned_in_original_units():
    x, y = linear_data(n=120, d=2)
    fit = fit_probe('mlp', 'regression', x, y * 100, x[:10], [], config=FAST)
    assert abs(float(np.mean(fit.predictions)) - float(np.mean(y[:10] * 100))) < 200
    labels = np.array([5, 9] * 30)
    xs = np.column_stack([labels == 9, labels == 5]).astype(float)
    fit = fit_probe('mlp', 'classification', xs, labels, xs[:4], [], config=FAST)
    assert set(fit.predictions.tolist()) <= {5, 9}
    constant = fit_probe('linear', 'classification', xs, np.full(60, 7), xs[:3], [])
    assert constant.predictions.tolist() == [7, 7, 7]


def test_probe_arguments_are_checked():
    x, y = linear_data(n=20)
    with pytest.raises(ValueError, match='unknown probe'):
        fit_probe('forest', 'regression', x, y, x, [])
    with pytest.raises(ValueError, match='kind'):
        fit_probe('linear', 'ranking', x, y, x, [])
    with pytest.raises(ValueError, match='features'):
        fit_probe('linear', 'regression', x, y, x[:, :2], [])


def grid_points(n=240, seed=0):
    rng = np.random.default_rng(seed)
    lon = rng.uniform(-180, 180, n)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    return np.column_stack([lon, lat])


def test_evaluate_regression_under_every_split():
    coords = grid_points()
    target = np.cos(np.radians(coords[:, 1]))
    features = np.column_stack([np.cos(np.radians(coords[:, 1])), coords[:, 0]])
    groups = np.where(
        coords[:, 0] < -60, 'west', np.where(coords[:, 0] < 60, 'mid', 'east')
    )
    for split in ('random', 'spatial-block', 'leave-one-continent-out'):
        result = evaluate(
            features,
            target,
            'regression',
            coords=coords,
            split=split,
            groups=groups,
            num_folds=3,
            block_size=30.0,
        )
        summary = result.summary()
        assert set(summary) == {'r2', 'mse'}
        assert summary['r2'][0] > 0.95, split
        assert summary['mse'][0] < 0.05, split
        assert len(result.folds) == 3
        assert result.seconds >= 0
    assert [f.fold for f in result.folds] == ['east', 'mid', 'west']


def test_evaluate_accepts_tensors_and_ready_made_folds():
    coords = grid_points(60)
    labels = torch.as_tensor((coords[:, 1] > 0).astype(np.int64))
    folds = random_kfold(60, 2, seed=0)
    result = evaluate(
        torch.as_tensor(coords), labels, 'classification', folds=folds, probe='linear'
    )
    assert result.summary()['accuracy'][0] > 0.9
    assert result.split == 'spatial-block' and result.probe == 'linear'


def test_evaluate_skips_folds_whose_labels_never_trained():
    coords = grid_points(90)
    groups = np.array(['a', 'b', 'c'] * 30)
    labels = np.array([0, 1, 2] * 30)  # the label is the held-out group
    result = evaluate(
        coords,
        labels,
        'classification',
        coords=coords,
        split='leave-one-continent-out',
        groups=groups,
    )
    assert result.folds == []
    assert set(result.skipped) == {'a', 'b', 'c'}
    assert all(np.isnan(v[0]) for v in result.summary().values())


def test_evaluate_errors():
    coords = grid_points(20)
    with pytest.raises(ValueError, match='needs coords'):
        evaluate(coords, coords[:, 0], 'regression')
    with pytest.raises(ValueError, match=r'\(N, d\)'):
        evaluate(coords[:5], coords[:, 0], 'regression', split='random')


def test_inner_folds_follow_the_outer_split_and_fall_back():
    coords = grid_points(120)
    spatial = inner_folds('spatial-block', coords, None, 3, 30.0, 0)
    assert len(spatial) == 3
    groups = np.array(['a', 'b'] * 60)
    loco = inner_folds('leave-one-continent-out', coords, groups, 3, 30.0, 0)
    assert len(loco) == 2  # only two training continents
    # One huge block: spatial folds are impossible, random K-fold is used.
    fallback = inner_folds('spatial-block', coords, None, 3, 1000.0, 0)
    assert [f.test.tolist() for f in fallback] == [
        f.test.tolist() for f in random_kfold(120, 3, 0)
    ]
    assert inner_folds('random', coords, None, 1, 30.0, 0) == []
