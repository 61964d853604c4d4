"""Benchmark reports: ``results.csv``, Markdown tables, bar charts, a manifest.

The report appears whole or not at all: `write_report` writes every file into
a hidden sibling folder first and moves it into place at the end, so a run
that fails or is killed midway leaves no partial report behind (and nothing
that would make the next run need ``--overwrite``).

Rows carry a status: ``'failed'`` rows (no usable mean) show ``failed:
REASON`` instead of a number and are never ranked; ``'flagged'`` rows show
their number with ``(low-n)`` or ``(flagged)`` and are explained under
"Failed and flagged results".
"""

import csv
import json
import math
import os
import pathlib
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from ..atomic import atomic_output, remove_stale_temporaries, temporary_prefix
from .comparison import random_init_comparisons, undecided_summary, wins_summary
from .evaluation import METRICS
from .results import ResultRow

__all__ = [
    'REPORT_MARKER',
    'ResultRow',
    'markdown_table',
    'problems_markdown',
    'random_init_markdown',
    'write_report',
]

#: The file whose presence means that a folder holds a (whole) report: it is
#: moved into place last.
REPORT_MARKER = 'results.csv'

#: Readable metric names.
METRIC_LABELS = {
    'r2': 'R²',
    'mse': 'MSE (standardized)',
    'accuracy': 'accuracy',
    'macro_f1': 'macro-F1',
}


def _flag(row: ResultRow) -> str:
    if row.status != 'flagged':
        return ''
    return ' (low-n)' if 'low-n' in row.note else ' (flagged)'


def _best(values: Mapping[str, float], metric: str) -> set[str]:
    finite = {k: v for k, v in values.items() if math.isfinite(v)}
    if not finite:
        return set()
    target = min(finite.values()) if metric == 'mse' else max(finite.values())
    return {k for k, v in finite.items() if v == target}


def markdown_table(rows: Sequence[ResultRow], probe: str) -> str:
    """A Markdown table of one probe: a line per task and metric, a column per encoder.

    Cells are ``mean ± std`` over folds; the best mean of each line is bold.
    Failed rows show ``failed: REASON`` and are never bold; flagged rows keep
    their number, marked ``(low-n)`` or ``(flagged)`` (their caveats apply to
    every encoder's row of the task alike, so they are still ranked).

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
                if (task, metric, e) in cell and not cell[(task, metric, e)].failed
            }
            best = _best(values, metric)
            cells = []
            for encoder in encoders:
                row = cell.get((task, metric, encoder))
                if row is None:
                    cells.append('-')
                    continue
                if row.failed:
                    cells.append(_escape(f'failed: {row.note or "no value"}'))
                    continue
                text = f'{row.mean:.3f} ± {row.std:.3f}'
                text = f'**{text}**' if encoder in best else text
                cells.append(text + _flag(row))
            lines.append(
                '| ' + ' | '.join([task, METRIC_LABELS[metric], *cells]) + ' |'
            )
    return '\n'.join(lines)


def _escape(text: str) -> str:
    # A '|' in a reason would split the Markdown cell.
    return text.replace('|', '\\|')


def _cell(mean: float, std: float, failure: str = '') -> str:
    if failure:
        return 'failed'
    return f'{mean:.3f} ± {std:.3f}' if math.isfinite(mean) else '-'


def problems_markdown(rows: Sequence[ResultRow]) -> str:
    """The failed and flagged rows with their reasons, as Markdown.

    Args:
        rows: The results.

    Returns:
        A ``## Failed and flagged results`` section (one line per encoder,
        task, probe and reason, naming the metrics), or ``''`` when every row
        is ok.
    """
    grouped: dict[tuple[str, str, str, str, str], list[str]] = {}
    for row in rows:
        if row.status == 'ok' and math.isfinite(row.mean):
            continue
        status = 'failed' if row.failed else row.status
        key = (status, row.encoder, row.task, row.probe, row.note or 'no value')
        grouped.setdefault(key, []).append(METRIC_LABELS.get(row.metric, row.metric))
    if not grouped:
        return ''
    failed = sum(key[0] == 'failed' for key in grouped)
    parts = [
        '## Failed and flagged results',
        '',
        f'{failed} failed and {len(grouped) - failed} flagged (encoder, task, '
        'probe). Failed results have no usable value: they are not ranked and '
        'not counted in the comparison with the random init. Flagged results '
        'are usable with the caveat given; low-n means folds too small for a '
        'meaningful score (more --num-points, fewer --folds or a bigger '
        '--block-size help).',
        '',
    ]
    for (status, encoder, task, probe, note), metrics in grouped.items():
        parts.append(
            f'- {status}: `{encoder}`, {task}, {probe} probe '
            f'({", ".join(metrics)}): {note}'
        )
    return '\n'.join(parts)


def random_init_markdown(rows: Sequence[ResultRow]) -> str:
    """Each pretrained encoder against its random init, as Markdown.

    For every encoder whose ``NAME (random init)`` companion is in ``rows``
    (see `random_init_comparisons`): a sentence with the number of tasks it
    wins per probe (and the undecided ones, e.g. a failed row), and a table
    of the main metric per task and probe.

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
        undecided = undecided_summary(verdicts)
        parts += [
            '',
            f'### {encoder}',
            '',
            f'{wins_summary(verdicts)}.' + (f' {undecided}.' if undecided else ''),
            '',
            f'| task | probe | metric | {encoder} | {companion} | difference '
            '| better |',
            '|---|---|---|---:|---:|---:|---|',
        ]
        for verdict in verdicts:
            difference = verdict.difference
            decided = math.isfinite(difference) and verdict.better != 'undecided'
            better = verdict.better
            if verdict.failure:
                better = _escape(f'undecided ({verdict.failure})')
            cells = [
                verdict.task,
                verdict.probe,
                METRIC_LABELS[verdict.metric],
                _cell(
                    verdict.pretrained_mean,
                    verdict.pretrained_std,
                    verdict.pretrained_failure,
                ),
                _cell(
                    verdict.random_init_mean,
                    verdict.random_init_std,
                    verdict.random_init_failure,
                ),
                f'{difference:+.3f}' if decided else '-',
                better,
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
                # A failed row has no bar (its reason is in results.md).
                usable = bool(match) and not match[0].failed
                means.append(match[0].mean if usable else math.nan)
                stds.append(match[0].std if usable else 0.0)
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
    output: str | pathlib.Path,
    rows: Sequence[ResultRow],
    manifest: Mapping[str, Any],
    unavailable: Mapping[str, str],
    title: str = 'satclip-tg benchmark',
) -> list[pathlib.Path]:
    """Write ``results.csv``, ``results.md``, ``METRIC.png`` and ``manifest.json``.

    ``results.md`` has a table per probe, the failed and flagged rows with
    their reasons (`problems_markdown`) and, when pretrained encoders ran with
    their random-init companions, the comparison of `random_init_markdown`.

    The report appears whole or not at all: every file is written into a
    hidden sibling folder (``.NAME.*.partial``), which is then renamed to
    ``output`` when that is new or empty. Into an existing folder the files
    are moved one by one, `REPORT_MARKER` last (and the old one removed
    first), so the folder never looks like it holds a whole report while it
    does not; report files of an older report that this one lacks (e.g. a
    chart of a metric no longer evaluated) are removed. Other files in the
    folder are left alone. The caller decides whether an existing report may
    be replaced (`run_benchmark` checks before evaluating anything).

    Args:
        output: The output folder.
        rows: The results.
        manifest: The run manifest.
        unavailable: Tasks (or encoders) left out, with the reason.
        title: Heading of the Markdown report.

    Returns:
        The written files.

    Raises:
        ValueError: If ``rows`` is empty: a report of nothing would only
            block the next run.
    """
    if not rows:
        raise ValueError('no results to report: nothing was evaluated')
    output = pathlib.Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    # Staging folders of killed runs (their process is gone) are removed.
    remove_stale_temporaries(output)
    # os.mkdir (not mkdtemp, which makes it private) gives the folder the
    # permissions a plain mkdir would, as it becomes the output itself.
    staging = output.parent / f'{temporary_prefix(output)}{os.urandom(4).hex()}.partial'
    os.mkdir(staging)
    try:
        names = _write_files(staging, rows, manifest, unavailable, title)
        _publish(staging, output, names)
    finally:
        # After a successful rename there is nothing left to remove.
        shutil.rmtree(staging, ignore_errors=True)
    return [output / name for name in names]


def _report_files() -> list[str]:
    return [
        REPORT_MARKER,
        'results.md',
        'manifest.json',
        *(f'{metric}.png' for metric in METRIC_LABELS),
    ]


def _publish(staging: pathlib.Path, output: pathlib.Path, names: list[str]) -> None:
    try:
        # One rename publishes the whole report into a new or empty folder.
        os.rename(staging, output)
        return
    except OSError:
        if not output.is_dir():
            raise
    marker = output / REPORT_MARKER
    # Until the new marker is in place the folder holds no report: a run
    # killed in between leaves nothing that needs --overwrite.
    marker.unlink(missing_ok=True)
    for name in _report_files():
        if name not in names:
            (output / name).unlink(missing_ok=True)
    for name in names:
        if name != REPORT_MARKER:
            os.replace(staging / name, output / name)
    os.replace(staging / REPORT_MARKER, marker)


def _write_files(
    folder: pathlib.Path,
    rows: Sequence[ResultRow],
    manifest: Mapping[str, Any],
    unavailable: Mapping[str, str],
    title: str,
) -> list[str]:
    names = [REPORT_MARKER]
    _write_csv(folder / REPORT_MARKER, rows)

    parts = [f'# {title}', '']
    settings = manifest.get('settings', {})
    if settings:
        parts += [
            ', '.join(f'{k}: {v}' for k, v in settings.items()),
            '',
        ]
    for probe in dict.fromkeys(row.probe for row in rows):
        parts += [f'## {probe} probe', '', markdown_table(rows, probe), '']
    problems = problems_markdown(rows)
    if problems:
        parts += [problems, '']
    comparison = random_init_markdown(rows)
    if comparison:
        parts += [comparison, '']
    if unavailable:
        parts += ['## Not run', '']
        parts += [f'- `{name}`: {reason}' for name, reason in unavailable.items()]
        parts.append('')
    with atomic_output(folder / 'results.md', overwrite=True) as tmp:
        tmp.write_text('\n'.join(parts), encoding='utf-8')
    names.append('results.md')

    for metric in dict.fromkeys(row.metric for row in rows):
        _write_chart(folder / f'{metric}.png', rows, metric)
        names.append(f'{metric}.png')

    with atomic_output(folder / 'manifest.json', overwrite=True) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, default=str), encoding='utf-8')
    names.append('manifest.json')
    return names
