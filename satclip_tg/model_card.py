"""Model cards: what every checkpoint satclip-tg writes says about itself.

`SatCLIPTask` stores a card under ``checkpoint['satclip_tg']['model_card']``
(the layout of `satclip_tg.checkpoint_format`) whenever a checkpoint is saved
(`build_model_card`): the data it was trained on (tile count and SHA-256 of
``index.csv``, from the S2-100K data module or the feature cache's manifest),
its configuration (the task's hyperparameters and, under LightningCLI, the
whole YAML config), the metrics at save time, the versions of the stack and
the date. `load_location_encoder` returns it as ``pretrained_info.model_card``,
and `render_model_card` turns it into Markdown (the demo writes it as
``MODEL_CARD.md``).

A card holds only strings, numbers, booleans, ``None``, lists and dicts, so
that checkpoints stay loadable with ``torch.load(..., weights_only=True)``.
"""

import datetime
import importlib.metadata
import json
import math
import os
import pathlib
import platform
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    'MODEL_CARD_FORMAT',
    'build_model_card',
    'data_card',
    'render_model_card',
    'stack_versions',
]

#: Version of the card's layout.
MODEL_CARD_FORMAT = 1
# index.csv digests by (path, size, mtime): a run saves a checkpoint every
# epoch, and hashing the index of 100,000 tiles each time would be waste.
_INDEX_DIGESTS: dict[tuple[str, int, int], str] = {}


def stack_versions() -> dict[str, str]:
    """Versions of satclip-tg, torch, torchgeo, lightning and Python.

    Returns:
        Label to version (``'unknown'`` for a distribution not installed).
    """
    import torch

    def installed(distribution: str) -> str:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            return 'unknown'

    return {
        'satclip-tg': installed('satclip-tg'),
        # torch's own string carries the build (e.g. +cu130), which the
        # distribution metadata lacks.
        'torch': str(torch.__version__),
        'torchgeo': installed('torchgeo'),
        'lightning': installed('lightning'),
        'python': platform.python_version(),
    }


def _plain(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` made of types safe loading accepts.

    Args:
        value: Anything (hyperparameters may hold paths, enums, tuples...).
        depth: Nesting level, to stop at absurd depths.

    Returns:
        Strings, numbers, booleans, None, lists and dicts with string keys;
        anything else becomes its ``str``.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        # NaN and inf survive torch.save but not JSON sidecars; keep text.
        return value if math.isfinite(value) else str(value)
    if depth > 20:
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): _plain(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item, depth + 1) for item in value]
    item = getattr(value, 'item', None)
    if callable(item) and getattr(value, 'numel', lambda: 0)() == 1:
        return _plain(item(), depth + 1)
    return str(value)


def _index_sha256(path: pathlib.Path) -> str:
    from .features.manifest import file_sha256

    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _INDEX_DIGESTS:
        _INDEX_DIGESTS[key] = file_sha256(path)
    return _INDEX_DIGESTS[key]


def _length(dataset: object) -> int | None:
    try:
        return len(dataset)  # type: ignore[arg-type]
    except TypeError:
        return None


def data_card(datamodule: object) -> dict[str, Any]:
    """Describe the training data of a data module.

    Understood: a data module with a feature-cache ``manifest``
    (`CachedFeatureDataModule`), and one with a ``root`` holding
    ``index.csv`` (`S2100KDataModule` and data in its layout). Others are
    named by class only.

    Args:
        datamodule: The trainer's data module (or None).

    Returns:
        ``datamodule`` (class path) and, where known, ``tiles`` (rows of
        ``index.csv``), ``index_sha256``, ``train_tiles``, ``val_tiles``,
        ``root`` or ``features`` and ``source`` (where the figures come from).
    """
    if datamodule is None:
        return {'datamodule': None}
    cls = type(datamodule)
    card: dict[str, Any] = {'datamodule': f'{cls.__module__}.{cls.__qualname__}'}
    manifest = getattr(datamodule, 'manifest', None)
    root = getattr(datamodule, 'root', None)
    if manifest is not None and hasattr(manifest, 'index_sha256'):
        card.update(
            source='feature-cache manifest',
            features=str(getattr(datamodule, 'features', '')),
            tiles=int(manifest.tiles),
            index_sha256=str(manifest.index_sha256),
            backbone=_plain(getattr(manifest, 'backbone', None)),
            views=_plain(getattr(manifest, 'views', None)),
        )
        root = (getattr(manifest, 'data', None) or {}).get('root')
        if root is not None:
            card['root'] = str(root)
    elif isinstance(root, (str, os.PathLike)):
        index = pathlib.Path(root) / 'index.csv'
        card['root'] = str(root)
        if index.is_file():
            card.update(source='index.csv', index_sha256=_index_sha256(index))
    for split in ('train', 'val'):
        dataset = getattr(datamodule, f'{split}_dataset', None)
        size = None if dataset is None else _length(dataset)
        if size is not None:
            card[f'{split}_tiles'] = size
    if 'tiles' not in card:
        # A Subset of the whole data set: its length is the rows of index.csv.
        whole = getattr(getattr(datamodule, 'train_dataset', None), 'dataset', None)
        size = None if whole is None else _length(whole)
        if size is not None:
            card['tiles'] = size
    return card


def _lightning_config(trainer: Any) -> str | None:
    """The LightningCLI configuration of a run, as YAML, if it has one.

    Args:
        trainer: The trainer.

    Returns:
        The YAML text that LightningCLI saves as ``config.yaml``, or None.
    """
    from lightning.pytorch.cli import SaveConfigCallback

    for callback in getattr(trainer, 'callbacks', None) or []:
        if isinstance(callback, SaveConfigCallback):
            try:
                text = callback.parser.dump(callback.config, skip_none=False)
            except Exception:  # a config that cannot be dumped is no reason to fail
                return None
            return str(text)
    return None


def build_model_card(module: Any, trainer: Any = None) -> dict[str, Any]:
    """Build the model card of a task being saved.

    Args:
        module: The LightningModule (its ``hparams``, ``location_encoder``).
        trainer: Its trainer, if attached (data, metrics, progress, config).

    Returns:
        ``{'format', 'created', 'model', 'data', 'config', 'training',
        'metrics', 'versions'}``, of plain types only.
    """
    cls = type(module)
    encoder = getattr(module, 'location_encoder', None)
    card: dict[str, Any] = {
        'format': MODEL_CARD_FORMAT,
        'created': datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds'),
        'model': {
            'task': f'{cls.__module__}.{cls.__qualname__}',
            'location_encoder': _plain(getattr(encoder, 'config', None)),
        },
        'data': {'datamodule': None},
        'config': {
            'hyper_parameters': _plain(dict(getattr(module, 'hparams', {}) or {})),
            'lightning_config': None,
        },
        'training': {},
        'metrics': {},
        'versions': stack_versions(),
    }
    if trainer is None:
        return card
    # Describing the run must never cost the checkpoint: a data module of an
    # unforeseen kind gets an error note instead.
    try:
        card['data'] = data_card(getattr(trainer, 'datamodule', None))
    except Exception as error:
        card['data'] = {'error': f'{type(error).__name__}: {error}'}
    card['config']['lightning_config'] = _lightning_config(trainer)
    card['training'] = {
        'epoch': _plain(getattr(trainer, 'current_epoch', None)),
        'global_step': _plain(getattr(trainer, 'global_step', None)),
        'fast_dev_run': bool(getattr(trainer, 'fast_dev_run', False)),
    }
    metrics = getattr(trainer, 'callback_metrics', None) or {}
    card['metrics'] = {
        str(name): _plain(value)
        for name, value in sorted(metrics.items())
        if getattr(value, 'numel', lambda: 1)() == 1
    }
    return card


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f'{value:.6g}'
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True)
    return str(value).replace('|', '\\|').replace('\n', ' ')


def _table(rows: Sequence[tuple[str, Any]], header: tuple[str, str]) -> list[str]:
    lines = [f'| {header[0]} | {header[1]} |', '|---|---|']
    lines += [f'| {_cell(name)} | {_cell(value)} |' for name, value in rows]
    return lines


def render_model_card(card: Mapping[str, Any], title: str | None = None) -> str:
    """Render a model card as Markdown.

    Args:
        card: A card from `build_model_card` (e.g. ``pretrained_info.model_card``).
        title: Heading; by default ``'Model card'`` with the encoder's kind.

    Returns:
        The Markdown text, ending in a newline.
    """
    model = card.get('model') or {}
    location = model.get('location_encoder') or {}
    if title is None:
        kind = ''
        if isinstance(location, Mapping) and location.get('network'):
            kind = (
                f': {location.get("positional_encoding")} + '
                f'{location.get("network")}, {location.get("embed_dim")}-d'
            )
        title = f'Model card{kind}'
    lines = [f'# {title}', '']
    lines += [f'Created {card.get("created", "(unknown)")} (UTC).', '']

    lines += ['## Model', '']
    rows: list[tuple[str, Any]] = [('task', model.get('task'))]
    if isinstance(location, Mapping):
        rows += [(f'location encoder: {k}', v) for k, v in location.items()]
    lines += [*_table(rows, ('item', 'value')), '']

    data = card.get('data') or {}
    lines += ['## Data', '']
    if data.get('datamodule') is None and len(data) <= 1:
        lines += ['Not recorded (the checkpoint was saved without a data module).']
    else:
        lines += _table(list(data.items()), ('item', 'value'))
    lines.append('')

    metrics = card.get('metrics') or {}
    lines += ['## Metrics at save time', '']
    lines += (
        _table(list(metrics.items()), ('metric', 'value')) if metrics else ['None.']
    )
    lines.append('')
    training = card.get('training') or {}
    if training:
        lines += ['## Training', '', *_table(list(training.items()), ('item', 'value'))]
        lines.append('')

    config = card.get('config') or {}
    lines += ['## Configuration', '']
    hparams = config.get('hyper_parameters') or {}
    lines += _table(list(hparams.items()), ('hyperparameter', 'value'))
    lines.append('')
    if config.get('lightning_config'):
        lines += ['LightningCLI configuration:', '', '```yaml']
        lines += [str(config['lightning_config']).rstrip('\n'), '```', '']

    versions = card.get('versions') or {}
    lines += [
        '## Versions',
        '',
        *_table(list(versions.items()), ('package', 'version')),
    ]
    return '\n'.join(lines) + '\n'
