r"""Probes on frozen embeddings, with hyperparameters chosen by inner CV.

Two probes, each for regression and classification:

* ``linear``: ridge regression (closed form) or multinomial logistic
  regression (L-BFGS), with an $L_2$ penalty chosen from a grid;
* ``mlp``: a small multilayer perceptron (ReLU, mini-batch Adam with a cosine
  learning-rate decay) whose $L_2$ penalty is chosen from a grid.

Features are standardized with the mean and standard deviation of the
training rows (regression targets too; predictions are returned in the
original units). The penalty is chosen by cross-validation on the training
rows only: every inner fold and every grid value is fitted, the value with the
best mean validation score (negative MSE, or accuracy) wins, and the model
refitted on all training rows with it makes the test predictions. The logistic
and MLP fits of all inner folds and grid values (and the refits) are trained
at once as one batch of independent models, which is several times faster on
a few CPU cores than fitting them one by one.

A fit that diverges never passes for a result: a grid value whose validation
predictions are not finite is never chosen, and when the chosen model's test
predictions are not finite `fit_probe` raises `ProbeDivergedError` (before, a
diverged classifier still returned the argmax of its NaN logits).
"""

import contextlib
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor

from ..datasets.splits import Fold
from ..errors import ProbeDivergedError

__all__ = [
    'PROBES',
    'ProbeConfig',
    'ProbeDivergedError',
    'ProbeFit',
    'ProbeName',
    'TaskKind',
    'fit_probe',
]

ProbeName = Literal['linear', 'mlp']
TaskKind = Literal['regression', 'classification']
#: The probe names.
PROBES: tuple[str, ...] = get_args(ProbeName)


@dataclass(frozen=True)
class ProbeConfig:
    r"""Hyperparameter grids and training settings of the probes.

    Penalties are per sample: the objective is the mean loss over the
    training rows plus $\lambda \lVert W \rVert^2$ (biases are not penalised).

    Attributes:
        ridge_penalties: Grid of $\lambda$ for ridge regression.
        logistic_penalties: Grid of $\lambda$ for logistic regression.
        logistic_max_iter: L-BFGS iterations of logistic regression.
        mlp_penalties: Grid of $\lambda$ for the MLP.
        mlp_hidden_dim: Width of the MLP's hidden layers.
        mlp_hidden_layers: Number of hidden layers.
        mlp_epochs: Passes over the training rows.
        mlp_batch_size: Rows per Adam step.
        mlp_lr: Initial Adam learning rate (cosine decay to zero).
        threads: Torch threads during a fit (restored afterwards). These are
            small problems: one thread per process is fastest on a shared
            machine; `run_benchmark` runs several processes instead.
    """

    ridge_penalties: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
    logistic_penalties: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2)
    logistic_max_iter: int = 100
    mlp_penalties: tuple[float, ...] = (1e-5, 1e-4, 1e-3)
    mlp_hidden_dim: int = 64
    mlp_hidden_layers: int = 2
    mlp_epochs: int = 15
    mlp_batch_size: int = 256
    mlp_lr: float = 1e-2
    threads: int = 1

    def grid(self, probe: str, kind: str) -> tuple[float, ...]:
        """The penalty grid of one probe.

        Args:
            probe: ``'linear'`` or ``'mlp'``.
            kind: ``'regression'`` or ``'classification'``.

        Returns:
            The grid.
        """
        if probe == 'mlp':
            return self.mlp_penalties
        return self.ridge_penalties if kind == 'regression' else self.logistic_penalties


@dataclass(frozen=True)
class ProbeFit:
    """The outcome of `fit_probe`.

    Attributes:
        predictions: Test predictions: values (regression) or class labels as
            given in ``y_train`` (classification).
        penalty: The selected penalty.
        inner_scores: Mean inner validation score of each grid value (negative
            MSE on the standardized target, or accuracy; ``-inf`` where a fit
            diverged).
    """

    predictions: NDArray[np.float64] | NDArray[np.int64]
    penalty: float
    inner_scores: dict[float, float] = field(default_factory=dict)


def _standardize(
    x_train: NDArray[np.float64], x_test: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std < 1e-12] = 1.0
    return (x_train - mean) / std, (x_test - mean) / std


@contextlib.contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def fit_probe(
    probe: str,
    kind: str,
    x_train: ArrayLike,
    y_train: ArrayLike,
    x_test: ArrayLike,
    inner_folds: Sequence[Fold],
    *,
    config: ProbeConfig | None = None,
    seed: int = 0,
) -> ProbeFit:
    """Fit a probe with inner-CV penalty selection and predict the test rows.

    Args:
        probe: ``'linear'`` or ``'mlp'``.
        kind: ``'regression'`` or ``'classification'``.
        x_train: ``(n, d)`` training features.
        y_train: ``(n,)`` training targets (floats) or labels (integers).
        x_test: ``(m, d)`` test features.
        inner_folds: Folds over the ``n`` training rows used to choose the
            penalty; with none (or a one-value grid) the first grid value of
            the grid is used.
        config: Grids and settings; defaults to `ProbeConfig()`.
        seed: Seed of the MLP initialisation.

    Returns:
        The predictions, the chosen penalty and the inner scores.

    Raises:
        ValueError: For an unknown probe or task kind, or features holding
            NaN or infinity.
        ProbeDivergedError: If the chosen model's test predictions are not
            finite.
    """
    if probe not in PROBES:
        raise ValueError(f'unknown probe {probe!r}; choose from {", ".join(PROBES)}')
    if kind not in get_args(TaskKind):
        raise ValueError(f"kind must be 'regression' or 'classification', not {kind!r}")
    config = config or ProbeConfig()
    with _torch_threads(config.threads):
        return _fit_probe(
            probe, kind, x_train, y_train, x_test, inner_folds, config, seed
        )


def _fit_probe(
    probe: str,
    kind: str,
    x_train: ArrayLike,
    y_train: ArrayLike,
    x_test: ArrayLike,
    inner_folds: Sequence[Fold],
    config: ProbeConfig,
    seed: int,
) -> ProbeFit:
    xtr = np.asarray(x_train, dtype=np.float64)
    xte = np.asarray(x_test, dtype=np.float64)
    if xtr.ndim != 2 or xte.ndim != 2 or xtr.shape[1] != xte.shape[1]:
        raise ValueError(
            f'features must be (n, d) and (m, d), got {xtr.shape} and {xte.shape}'
        )
    # Checked here so that bad input is not later mistaken for a diverged fit.
    if not (np.isfinite(xtr).all() and np.isfinite(xte).all()):
        raise ValueError('features hold NaN or infinity')
    xtr, xte = _standardize(xtr, xte)
    grid = config.grid(probe, kind)
    folds = list(inner_folds) if len(grid) > 1 else []

    if kind == 'regression':
        y = np.asarray(y_train, dtype=np.float64)
        mean, std = float(y.mean()), float(y.std()) or 1.0
        target = (y - mean) / std
        if probe == 'linear':
            predict = _ridge(xtr, target, xte, folds, grid)
        else:
            predict = _batched(xtr, target, xte, folds, grid, 1, config, seed, 'mlp')
        scores, best = _select(predict.validation, folds, grid, target, kind)
        _check_finite(predict.test[best], probe, grid[best])
        return ProbeFit(predict.test[best][:, 0] * std + mean, grid[best], scores)

    labels = np.asarray(y_train)
    classes, encoded = np.unique(labels, return_inverse=True)
    encoded = encoded.ravel()
    if len(classes) == 1:
        constant = np.full(len(xte), classes[0], dtype=np.int64)
        return ProbeFit(constant, grid[0], {})
    model = 'logistic' if probe == 'linear' else 'mlp'
    predict = _batched(
        xtr, encoded, xte, folds, grid, len(classes), config, seed, model
    )
    scores, best = _select(predict.validation, folds, grid, encoded, kind)
    test = predict.test[best]
    # The argmax of NaN logits is a class all the same: check before it.
    _check_finite(test, probe, grid[best])
    return ProbeFit(classes[test.argmax(axis=1)].astype(np.int64), grid[best], scores)


def _check_finite(outputs: NDArray[np.float64], probe: str, penalty: float) -> None:
    bad = int((~np.isfinite(outputs)).any(axis=-1).sum())
    if bad:
        raise ProbeDivergedError(
            f'the {probe} probe diverged: {bad} of {len(outputs)} test '
            f'predictions are not finite (penalty {penalty:g})'
        )


@dataclass
class _Predictions:
    # validation[g][f]: predictions of grid value g, inner fold f, on that
    # fold's validation rows; test[g]: refit predictions on the test rows.
    validation: list[list[NDArray[np.float64]]]
    test: list[NDArray[np.float64]]


def _select(
    validation: list[list[NDArray[np.float64]]],
    folds: Sequence[Fold],
    grid: Sequence[float],
    target: NDArray[np.float64] | NDArray[np.intp],
    kind: str,
) -> tuple[dict[float, float], int]:
    if not folds:
        return {}, 0
    scores: dict[float, float] = {}
    for g, value in enumerate(grid):
        per_fold = []
        for f, fold in enumerate(folds):
            prediction, truth = validation[g][f], target[fold.test]
            if not np.isfinite(prediction).all():
                # A diverged fit must never be chosen; NaN would also break
                # the max below.
                per_fold.append(-math.inf)
            elif kind == 'regression':
                per_fold.append(-float(np.mean((prediction.ravel() - truth) ** 2)))
            else:
                per_fold.append(float(np.mean(prediction.argmax(axis=1) == truth)))
        scores[float(value)] = float(np.mean(per_fold))
    best = max(range(len(grid)), key=lambda g: (scores[float(grid[g])], -g))
    return scores, best


def _ridge(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    x_test: NDArray[np.float64],
    folds: Sequence[Fold],
    grid: Sequence[float],
) -> _Predictions:
    def solve(
        rows: NDArray[np.intp], targets: list[NDArray[np.float64]]
    ) -> list[list[NDArray[np.float64]]]:
        xs, ys = x[rows], y[rows]
        x_mean, y_mean = xs.mean(axis=0), ys.mean()
        centred = xs - x_mean
        eigenvalues, vectors = np.linalg.eigh(centred.T @ centred / len(rows))
        projected = vectors.T @ (centred.T @ (ys - y_mean)) / len(rows)
        out = []
        for penalty in grid:
            weights = vectors @ (projected / (np.maximum(eigenvalues, 0) + penalty))
            out.append([(t - x_mean) @ weights + y_mean for t in targets])
        return out

    validation: list[list[NDArray[np.float64]]] = [[] for _ in grid]
    for fold in folds:
        for g, predictions in enumerate(solve(fold.train, [x[fold.test]])):
            validation[g].append(predictions[0][:, None])
    refit = solve(np.arange(len(x)), [x_test])
    return _Predictions(validation, [p[0][:, None] for p in refit])


def _batched(
    x: NDArray[np.float64],
    y: NDArray[np.float64] | NDArray[np.intp],
    x_test: NDArray[np.float64],
    folds: Sequence[Fold],
    grid: Sequence[float],
    outputs: int,
    config: ProbeConfig,
    seed: int,
    model: str,
) -> _Predictions:
    # Model m = g * (F + 1) + f trains on inner fold f's training rows
    # (f < F) or on all rows (f = F), with penalty grid[g].
    n = len(x)
    masks = [fold.train for fold in folds] + [np.arange(n)]
    per_grid = len(masks)
    count = len(grid) * per_grid
    member = torch.zeros(count, n, dtype=torch.float32)
    for g in range(len(grid)):
        for f, rows in enumerate(masks):
            member[g * per_grid + f, torch.as_tensor(rows)] = 1.0
    penalty = torch.tensor(
        [float(value) for value in grid for _ in masks], dtype=torch.float32
    )
    features = torch.as_tensor(x, dtype=torch.float32)
    hidden = (
        (0, 0)
        if model == 'logistic'
        else (
            config.mlp_hidden_dim,
            config.mlp_hidden_layers,
        )
    )
    network = _BatchedNetwork(
        count, x.shape[1], outputs, *hidden, seed, zero=model == 'logistic'
    )
    regression = outputs == 1 and y.dtype.kind == 'f'
    target = torch.as_tensor(y, dtype=torch.float32 if regression else torch.long)

    def objective(rows: Tensor | None = None) -> Tensor:
        inputs = features if rows is None else features[rows]
        truth = target if rows is None else target[rows]
        weight = member if rows is None else member[:, rows]
        out = network(inputs)  # (M, rows, outputs)
        if regression:
            losses = (out[..., 0] - truth) ** 2
        else:
            losses = torch.nn.functional.cross_entropy(
                out.reshape(-1, outputs), truth.repeat(count), reduction='none'
            ).reshape(count, -1)
        # Each model's mean loss over its own training rows in this batch.
        data_term = (losses * weight).sum(1) / weight.sum(1).clamp(min=1.0)
        total: Tensor = (data_term + penalty * network.weight_norms()).sum()
        return total

    if model == 'logistic':
        optimizer = torch.optim.LBFGS(
            network.parameters(),
            lr=1.0,
            max_iter=config.logistic_max_iter,
            history_size=20,
            tolerance_grad=1e-6,
            tolerance_change=1e-10,
            line_search_fn='strong_wolfe',
        )

        def closure() -> Tensor:
            optimizer.zero_grad()
            loss = objective()
            loss.backward()  # type: ignore[no-untyped-call]
            return loss

        optimizer.step(closure)  # type: ignore[no-untyped-call]
    else:
        adam = torch.optim.Adam(network.parameters(), lr=config.mlp_lr, foreach=True)
        generator = torch.Generator().manual_seed(seed)
        batches_per_epoch = max(math.ceil(n / config.mlp_batch_size), 1)
        steps = config.mlp_epochs * batches_per_epoch
        step = 0
        for _ in range(config.mlp_epochs):
            order = torch.randperm(n, generator=generator)
            for batch_rows in order.chunk(batches_per_epoch):
                scale = 0.5 * (1 + math.cos(math.pi * step / steps))
                for group in adam.param_groups:
                    group['lr'] = config.mlp_lr * scale
                adam.zero_grad()
                objective(batch_rows).backward()  # type: ignore[no-untyped-call]
                adam.step()
                step += 1

    with torch.no_grad():
        train_out = network(features).double().numpy()
        test_out = network(torch.as_tensor(x_test, dtype=torch.float32)).double()
    validation = [
        [train_out[g * per_grid + f][fold.test] for f, fold in enumerate(folds)]
        for g in range(len(grid))
    ]
    test = [test_out[g * per_grid + len(folds)].numpy() for g in range(len(grid))]
    return _Predictions(validation, test)


class _BatchedNetwork(torch.nn.Module):
    """``count`` independent MLPs (or linear maps) evaluated with one einsum."""

    def __init__(
        self,
        count: int,
        dim_in: int,
        dim_out: int,
        hidden_dim: int,
        hidden_layers: int,
        seed: int,
        zero: bool = False,
    ) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        sizes = [dim_in] + [hidden_dim] * hidden_layers + [dim_out]
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(sizes):
            bound = 1.0 / math.sqrt(fan_in)
            if zero:
                weight = torch.zeros(count, fan_in, fan_out)
            else:
                # One draw shared by all models: the grid values and folds
                # then differ only in what they are meant to differ in.
                single = torch.rand(fan_in, fan_out, generator=generator)
                weight = ((single * 2 - 1) * bound * math.sqrt(3)).expand(count, -1, -1)
            self.weights.append(torch.nn.Parameter(weight.clone()))
            single_bias = torch.rand(fan_out, generator=generator) * 2 - 1
            bias = torch.zeros(count, 1, fan_out) if zero else single_bias * bound
            self.biases.append(
                torch.nn.Parameter(bias.expand(count, 1, fan_out).clone())
            )

    def forward(self, features: Tensor) -> Tensor:
        out = torch.einsum('nd,mdh->mnh', features, self.weights[0]) + self.biases[0]
        for weight, bias in zip(self.weights[1:], self.biases[1:], strict=True):
            out = torch.baddbmm(bias, torch.relu(out), weight)
        result: Tensor = out
        return result

    def weight_norms(self) -> Tensor:
        return torch.stack([w.pow(2).sum(dim=(1, 2)) for w in self.weights]).sum(0)
