"""Stream the embeddings of ``predict`` into one Parquet file.

`SatCLIPPretraining.predict_step` returns, per batch, the (lon, lat) points, their
location embeddings and, when the batch holds images or cached features,
the image embeddings. `EmbeddingWriter` writes them batch by batch (memory
stays bounded by one row group, however large the data set) to one Parquet
file with the columns

* ``lon``, ``lat``: degrees, float32 (as the data modules give them) or
  float64 when the points are;
* ``emb_000``, ``emb_001``, ...: float32 location embedding (the column names
  of ``satclip-tg embed``);
* ``img_emb_000``, ``img_emb_001``, ...: float32 image embedding, when the
  predict batches have images or features.

Under DDP every process writes a hidden part file next to the output; when
the epoch ends, process 0 concatenates the parts in rank order (row group by
row group, `merge_parts`) into the output, written atomically, and removes
them.
"""

import os
import pathlib
import secrets
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor

from ..atomic import OutputExistsError, atomic_output, check_writable, temporary_prefix
from ..embedding.points_io import embedding_columns

__all__ = [
    'IMAGE_PREFIX',
    'LOCATION_PREFIX',
    'EmbeddingWriter',
    'check_prediction_output',
    'merge_parts',
    'prediction_table',
]

#: Column prefix of the location embedding (as ``satclip-tg embed``).
LOCATION_PREFIX = 'emb_'
#: Column prefix of the image embedding.
IMAGE_PREFIX = 'img_emb_'


def check_prediction_output(
    path: str | os.PathLike[str], overwrite: bool = False
) -> pathlib.Path:
    """Refuse, before any work, an output the writer could not produce.

    Args:
        path: The output file.
        overwrite: Whether an existing file may be replaced.

    Returns:
        The output as a path.

    Raises:
        ValueError: If the name does not end in ``.parquet`` or no file can be
            created in its folder.
        OutputExistsError: If it exists and ``overwrite`` is false.
    """
    output = pathlib.Path(path)
    if output.suffix.lower() != '.parquet':
        raise ValueError(
            f'prediction output {str(path)!r} must be a .parquet file (one row '
            f'per point: lon, lat and the embedding columns)'
        )
    check_writable(output)
    if output.exists() and not overwrite:
        raise OutputExistsError(
            f'{output} already exists; pass --overwrite (overwrite=True) to '
            f'replace it, or choose another output path'
        )
    return output


def prediction_table(prediction: Mapping[str, Tensor]) -> pa.Table:
    """Turn one batch of `SatCLIPPretraining.predict_step` output into a table.

    Args:
        prediction: ``{'point': (B, 2), 'location_embedding': (B, D)}`` and
            optionally ``'image_embedding'`` ``(B, D')``.

    Returns:
        The columns ``lon``, ``lat``, ``emb_*`` and (with images) ``img_emb_*``.

    Raises:
        ValueError: If the prediction is not of that form.
    """
    if not isinstance(prediction, Mapping) or not {
        'point',
        'location_embedding',
    } <= set(prediction):
        kind = (
            sorted(prediction) if isinstance(prediction, Mapping) else type(prediction)
        )
        raise ValueError(
            f'EmbeddingWriter writes the output of SatCLIPPretraining.predict_step, a '
            f"dict with 'point' and 'location_embedding'; got {kind}"
        )
    point = prediction['point']
    # Points keep their precision: float32 points written as float64 would
    # show digits (-84.906998) that the data never had.
    points = _numpy(
        point, torch.float64 if point.dtype == torch.float64 else torch.float32
    )
    rows = points.shape[0]
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"'point' must be (B, 2) (lon, lat), got {points.shape}")
    columns: dict[str, Any] = {'lon': points[:, 0], 'lat': points[:, 1]}
    for key, prefix in (
        ('location_embedding', LOCATION_PREFIX),
        ('image_embedding', IMAGE_PREFIX),
    ):
        if key not in prediction:
            continue
        values = _numpy(prediction[key], torch.float32)
        if values.ndim != 2 or values.shape[0] != rows:
            raise ValueError(
                f'{key!r} must be ({rows}, D) for {rows} points, got {values.shape}'
            )
        names = embedding_columns(values.shape[1], prefix)
        columns.update(zip(names, values.T, strict=True))
    return pa.table(columns)


def _describe(schema: pa.Schema) -> str:
    image = sum(name.startswith(IMAGE_PREFIX) for name in schema.names)
    location = sum(name.startswith(LOCATION_PREFIX) for name in schema.names)
    return f'lon, lat, {location} location and {image} image embedding columns'


def _numpy(tensor: Tensor, dtype: torch.dtype) -> np.ndarray[Any, Any]:
    # One conversion (device and dtype at once): this runs for every batch.
    return tensor.detach().to('cpu', dtype).numpy()


def merge_parts(
    parts: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    overwrite: bool = False,
) -> int:
    """Concatenate Parquet part files into one output, then remove the parts.

    The parts are read one row group at a time, in the order given (rank
    order), so memory stays bounded by the largest row group. The output is
    written atomically (`satclip_tg.atomic.atomic_output`); a single part is
    moved into place instead of copied. The parts are removed only when the
    output is complete.

    Args:
        parts: The part files, in output order; all with the same schema.
        output: The final file.
        overwrite: Whether an existing output may be replaced.

    Returns:
        The number of rows written.

    Raises:
        ValueError: If there is no part or the parts' columns differ.
        OutputExistsError: If the output exists and ``overwrite`` is false.
    """
    paths = [pathlib.Path(part) for part in parts]
    if not paths:
        raise ValueError('merge_parts needs at least one part file')
    files: list[pq.ParquetFile] = []
    try:
        files.extend(pq.ParquetFile(path) for path in paths)
        schema = files[0].schema_arrow
        for path, file in zip(paths[1:], files[1:], strict=True):
            if not file.schema_arrow.equals(schema):
                raise ValueError(
                    f'part {path} has other columns than {paths[0]} '
                    f'({file.schema_arrow.names[:4]}... against '
                    f'{schema.names[:4]}...); the processes predicted different '
                    f'outputs (e.g. some batches with images, some without)'
                )
        rows = sum(int(file.metadata.num_rows) for file in files)
        with atomic_output(output, overwrite=overwrite) as temporary:
            if len(files) == 1:
                files[0].close()
                os.replace(paths[0], temporary)
            else:
                with pq.ParquetWriter(temporary, schema) as writer:
                    for file in files:
                        for group in range(file.num_row_groups):
                            writer.write_table(file.read_row_group(group))
    finally:
        for file in files:
            file.close()
    for path in paths:
        path.unlink(missing_ok=True)
    return rows


class EmbeddingWriter(BasePredictionWriter):
    """Write the embeddings of ``trainer.predict`` to one Parquet file.

    Batches are streamed into the file (never all held in memory); use it
    with ``trainer.predict(..., return_predictions=False)``, as ``satclip-tg
    predict --output FILE.parquet`` does. Columns: ``lon``, ``lat`` (degrees,
    float32 or float64 as the points), the location embedding ``emb_000``,
    ... and, when the batches hold images or cached features, the image
    embedding ``img_emb_000``, ... (float32).

    Rows follow the predict data set's order in a single process. Under DDP
    each process writes a hidden part file beside the output and process 0
    concatenates them in rank order, so rows come process by process; each
    row's ``lon``/``lat`` say which point it is. With several nodes, the
    output folder must be on a file system that all nodes share.

    Example::

        writer = EmbeddingWriter('embeddings.parquet')
        trainer = Trainer(callbacks=[writer])
        trainer.predict(task, datamodule=datamodule, return_predictions=False)
    """

    def __init__(
        self,
        output: str | os.PathLike[str],
        overwrite: bool = False,
        rows_per_group: int = 16384,
    ) -> None:
        """Initialize the writer and check the output.

        Args:
            output: The ``.parquet`` file to write.
            overwrite: Replace an existing output.
            rows_per_group: Rows gathered before a Parquet row group is
                written; bounds the memory the writer holds.

        Raises:
            ValueError: If the output is not a ``.parquet`` file, cannot be
                created, or ``rows_per_group`` is not positive.
            OutputExistsError: If it exists and ``overwrite`` is false.
        """
        super().__init__('batch')
        if rows_per_group < 1:
            raise ValueError(f'rows_per_group must be positive, got {rows_per_group}')
        self.output = check_prediction_output(output, overwrite)
        self.overwrite = overwrite
        self.rows_per_group = rows_per_group
        self._part: pathlib.Path | None = None
        self._prefix = ''
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._rows = 0

    def _part_path(self, rank: int) -> pathlib.Path:
        # Named like an atomic_output temporary of process 0, so that a killed
        # run's parts are removed by the next writer of the same output.
        return self.output.parent / f'{self._prefix}rank{rank:05d}.partial.parquet'

    def on_predict_start(
        self, trainer: 'pl.Trainer', pl_module: 'pl.LightningModule'
    ) -> None:
        """Check the output again and choose this process's part file.

        Args:
            trainer: The trainer.
            pl_module: The module.
        """
        if trainer.is_global_zero:
            check_prediction_output(self.output, self.overwrite)
            self.output.parent.mkdir(parents=True, exist_ok=True)
        prefix = f'{temporary_prefix(self.output)}{secrets.token_hex(4)}.'
        self._prefix = trainer.strategy.broadcast(prefix, src=0)
        self._part = self._part_path(trainer.global_rank)
        self._writer = None
        self._schema = None
        self._pending = []
        self._pending_rows = 0
        self._rows = 0

    def write_on_batch_end(
        self,
        trainer: 'pl.Trainer',
        pl_module: 'pl.LightningModule',
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Add one batch's embeddings to this process's part file.

        Args:
            trainer: The trainer.
            pl_module: The module.
            prediction: The output of ``predict_step``.
            batch_indices: Indices of the batch's samples (unused).
            batch: The batch (unused).
            batch_idx: Index of the batch.
            dataloader_idx: Index of the dataloader.
        """
        table = prediction_table(prediction)
        if table.num_rows == 0:
            return
        if self._schema is None:
            self._schema = table.schema
        elif not table.schema.equals(self._schema):
            raise ValueError(
                f'predict batch {batch_idx} has the columns '
                f'{_describe(table.schema)}, earlier batches '
                f'{_describe(self._schema)}: every batch must have the same '
                f'embeddings (all with images or features, or none)'
            )
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self._rows += table.num_rows
        if self._pending_rows >= self.rows_per_group:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        if self._writer is None:
            if self._part is None:
                raise RuntimeError('EmbeddingWriter.on_predict_start was not called')
            self._writer = pq.ParquetWriter(self._part, self._schema)
        self._writer.write_table(pa.concat_tables(self._pending))
        self._pending = []
        self._pending_rows = 0

    def _close(self) -> None:
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def on_predict_epoch_end(
        self, trainer: 'pl.Trainer', pl_module: 'pl.LightningModule'
    ) -> None:
        """Close the part files; process 0 merges them into the output.

        Args:
            trainer: The trainer.
            pl_module: The module.

        Raises:
            RuntimeError: If the rows written differ from the rows predicted.
        """
        super().on_predict_epoch_end(trainer, pl_module)
        self._close()
        # Also the barrier: every part is closed once the counts are gathered.
        counts = trainer.strategy.all_gather(
            torch.tensor([self._rows], device=pl_module.device)
        )
        rows = [int(count) for count in torch.as_tensor(counts).reshape(-1).tolist()]
        if trainer.is_global_zero:
            parts = [self._part_path(rank) for rank, n in enumerate(rows) if n]
            if not parts:
                warnings.warn(
                    f'nothing was predicted (the predict data is empty); '
                    f'{self.output} is not written',
                    UserWarning,
                    stacklevel=2,
                )
            else:
                written = merge_parts(parts, self.output, overwrite=self.overwrite)
                if written != sum(rows):
                    raise RuntimeError(
                        f'{self.output} holds {written} rows, but {sum(rows)} '
                        f'were predicted'
                    )
        trainer.strategy.barrier('satclip_tg_embedding_writer')
        self._part = None

    def on_exception(
        self,
        trainer: 'pl.Trainer',
        pl_module: 'pl.LightningModule',
        exception: BaseException,
    ) -> None:
        """Remove this process's part file when prediction fails.

        Args:
            trainer: The trainer.
            pl_module: The module.
            exception: The error.
        """
        self._pending = []
        self._pending_rows = 0
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._part is not None:
            self._part.unlink(missing_ok=True)
            self._part = None
