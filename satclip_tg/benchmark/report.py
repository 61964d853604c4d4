"""Benchmark reports: ``results.csv``, Markdown tables, bar charts, a manifest.

Every file is written with `atomic_output`: it appears whole or not at all.
"""

import csv
import json
import math
import pathlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..atomic import atomic_output
from .comparison import random_init_comparisons, wins_summary
from .evaluation import METRICS

__all__ = ['ResultRow', 'markdown_table', 'random_init_markdown', 'write_report']

#: Readable metric names.
METRIC_LABELS = {
    'r2': 'R²',
    'mse': 'MSE (standardized)',
    'accuracy': 'accuracy',
    'macro_f1': 'macro-F1',
}


@dataclass(frozen=True)
class ResultRow:
    """One line of ``results.csv``: a metric of an encoder on a task.

    Attributes:
        encoder: Encoder name.
        task: Task name.
        kind: ``'regression'`` or ``'classification'``.
        probe: Probe name.
        split: Split name.
        metric: Metric name.
        mean: Mean over the evaluated folds.
        std: Standard deviation over the evaluated folds.
        folds: Number of evaluated folds.
        points: Number of labelled points.
        dim: Embedding size.
        seconds: Time spent in the probe fits.
    """

    encoder: str
    task: str
    kind: str
    probe: str
    split: str
    metric: str
    mean: float
    std: float
    folds: int
    points: int
    dim: int
    seconds: float


def _best(values: Mapping[str, float], metric: str) -> set[str]:
    finite = {k: v for k, v in values.items() if math.isfinite(v)}
    if not finite:
        return set()
    target = min(finite.values()) if metric == 'mse' else max(finite.values())
    return {k for k, v in finite.items() if v == target}


def markdown_table(rows: Sequence[ResultRow], probe: str) -> str:
    """A Markdown table of one probe: a line per task and metric, a column per encoder.

    Cells are ``mean ± std`` over folds; the best mean of each line is bold.

    Args:
        rows: The results.
        probe: The probe to show.

    Returns:
        The table.
    """
    chosen = [row for row in rows if row.probe == probe]
    encoders = list(dict.fromkeys(row.encoder for row in chosen))
    tasks = list(dict.fromkeys(row.task for row in chosen))
    cell = {(row.task, row.metric, row.encoder): row for row in chosen}
    header = ['task', 'metric', *encoders]
    lines = [
        '| ' + ' | '.join(header) + ' |',
        '|' + '|'.join(['---', '---'] + ['---:'] * len(encoders)) + '|',
    ]
    for task in tasks:
        kind = next(row.kind for row in chosen if row.task == task)
        for metric in METRICS[kind]:
            values = {
                e: cell[(task, metric, e)].mean
                for e in encoders
                if (task, metric, e) in cell
            }
            best = _best(values, metric)
            cells = []
            for encoder in encoders:
                row = cell.get((task, metric, encoder))
                if row is None or not math.isfinite(row.mean):
                    cells.append('-')
                    continue
                text = f'{row.mean:.3f} ± {row.std:.3f}'
                cells.append(f'**{text}**' if encoder in best else text)
            lines.append(
                '| ' + ' | '.join([task, METRIC_LABELS[metric], *cells]) + ' |'
            )
    return '\n'.join(lines)


def _cell(mean: float, std: float) -> str:
    return f'{mean:.3f} ± {std:.3f}' if math.isfinite(mean) else '-'


def random_init_markdown(rows: Sequence[ResultRow]) -> str:
    """Each pretrained encoder against its random init, as Markdown.

    For every encoder whose ``NAME (random init)`` companion is in ``rows``
    (see `random_init_comparisons`): a sentence with the number of tasks it
    wins per probe, and a table of the main metric per task and probe.

    Args:
        rows: The results.

    Returns:
        A ``## Pretrained vs random init`` section, or ``''`` when no encoder
        has a companion.
    """
    comparisons = random_init_comparisons(rows)
    if not comparisons:
        return ''
    parts = [
        '## Pretrained vs random init',
        '',
        'Each pretrained encoder against the same architecture with random '
        'weights (metrics averaged over the seeds), on the main metric: '
        f'{METRIC_LABELS["r2"]} for regression, {METRIC_LABELS["accuracy"]} '
        'for classification. Cells are mean ± std over folds (for the random '
        'init both averaged over the seeds); the difference is pretrained '
        'minus random init.',
    ]
    for encoder, verdicts in comparisons.items():
        companion = verdicts[0].random_init
        parts += [
            '',
            f'### {encoder}',
            '',
            f'{wins_summary(verdicts)}.',
            '',
            f'| task | probe | metric | {encoder} | {companion} | difference '
            '| better |',
            '|---|---|---|---:|---:|---:|---|',
        ]
        for verdict in verdicts:
            difference = verdict.difference
            cells = [
                verdict.task,
                verdict.probe,
                METRIC_LABELS[verdict.metric],
                _cell(verdict.pretrained_mean, verdict.pretrained_std),
                _cell(verdict.random_init_mean, verdict.random_init_std),
                f'{difference:+.3f}' if math.isfinite(difference) else '-',
                verdict.better,
            ]
            parts.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(parts)


def _write_csv(path: pathlib.Path, rows: Sequence[ResultRow]) -> None:
    names = list(ResultRow.__dataclass_fields__)
    with atomic_output(path, overwrite=True) as tmp:
        with tmp.open('w', newline='', encoding='utf-8') as handle:
            writer = csv.DictWriter(handle, fieldnames=names)
            writer.writeheader()
            for row in rows:
                writer.writerow(asdict(row))


def _write_chart(path: pathlib.Path, rows: Sequence[ResultRow], metric: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    chosen = [row for row in rows if row.metric == metric]
    probes = list(dict.fromkeys(row.probe for row in chosen))
    tasks = list(dict.fromkeys(row.task for row in chosen))
    encoders = list(dict.fromkeys(row.encoder for row in chosen))
    figure, axes = plt.subplots(
        len(probes),
        1,
        figsize=(max(6.0, 1.6 * len(tasks) + 2), 3.2 * len(probes)),
        squeeze=False,
    )
    width = 0.8 / max(len(encoders), 1)
    for axis, probe in zip(axes[:, 0], probes, strict=True):
        for e, encoder in enumerate(encoders):
            means, stds = [], []
            for task in tasks:
                match = [
                    r
                    for r in chosen
                    if (r.probe, r.task, r.encoder) == (probe, task, encoder)
                ]
                means.append(match[0].mean if match else math.nan)
                stds.append(match[0].std if match else 0.0)
            positions = [
                t + (e - (len(encoders) - 1) / 2) * width for t in range(len(tasks))
            ]
            axis.bar(positions, means, width, yerr=stds, label=encoder, capsize=2)
        axis.set_xticks(range(len(tasks)), tasks)
        axis.set_ylabel(METRIC_LABELS[metric])
        axis.set_title(f'{METRIC_LABELS[metric]}, {probe} probe')
        axis.grid(axis='y', alpha=0.3)
        if metric == 'r2':
            axis.set_ylim(bottom=max(axis.get_ylim()[0], -0.5))
    axes[0, 0].legend(fontsize='small', ncols=min(len(encoders), 4))
    figure.tight_layout()
    with atomic_output(path, overwrite=True) as tmp:
        figure.savefig(tmp, format='png', dpi=110)
    plt.close(figure)


def write_report(
    output: pathlib.Path,
    rows: Sequence[ResultRow],
    manifest: Mapping[str, Any],
    unavailable: Mapping[str, str],
    title: str = 'satclip-tg benchmark',
) -> list[pathlib.Path]:
    """Write ``results.csv``, ``results.md``, ``METRIC.png`` and ``manifest.json``.

    ``results.md`` has a table per probe and, when pretrained encoders ran
    with their random-init companions, the comparison of
    `random_init_markdown`.

    Args:
        output: The output folder.
        rows: The results.
        manifest: The run manifest.
        unavailable: Tasks (or encoders) left out, with the reason.
        title: Heading of the Markdown report.

    Returns:
        The written files.
    """
    output.mkdir(parents=True, exist_ok=True)
    written = [output / 'results.csv']
    _write_csv(written[0], rows)

    parts = [f'# {title}', '']
    settings = manifest.get('settings', {})
    if settings:
        parts += [
            ', '.join(f'{k}: {v}' for k, v in settings.items()),
            '',
        ]
    for probe in dict.fromkeys(row.probe for row in rows):
        parts += [f'## {probe} probe', '', markdown_table(rows, probe), '']
    comparison = random_init_markdown(rows)
    if comparison:
        parts += [comparison, '']
    if unavailable:
        parts += ['## Not run', '']
        parts += [f'- `{name}`: {reason}' for name, reason in unavailable.items()]
        parts.append('')
    markdown = output / 'results.md'
    with atomic_output(markdown, overwrite=True) as tmp:
        tmp.write_text('\n'.join(parts), encoding='utf-8')
    written.append(markdown)

    for metric in dict.fromkeys(row.metric for row in rows):
        chart = output / f'{metric}.png'
        _write_chart(chart, rows, metric)
        written.append(chart)

    manifest_path = output / 'manifest.json'
    with atomic_output(manifest_path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, default=str), encoding='utf-8')
    written.append(manifest_path)
    return written
