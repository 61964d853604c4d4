"""EmbeddingWriter: streaming predictions into one Parquet file."""

import os
import pathlib

import lightning.pytorch as pl
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from satclip_tg.atomic import OutputExistsError
from satclip_tg.callbacks import (
    EmbeddingWriter,
    check_prediction_output,
    merge_parts,
    prediction_table,
)
from satclip_tg.cli import main


def _part(path: pathlib.Path, start: int, rows: int, group: int) -> pathlib.Path:
    values = np.arange(start, start + rows, dtype=np.float32)
    table = pa.table({'lon': values, 'lat': -values, 'emb_000': values * 2})
    pq.write_table(table, path, row_group_size=group)
    return path


def test_merge_parts_concatenates_in_rank_order_and_removes_parts(tmp_path) -> None:
    # Three fake ranks with several row groups each, given in rank order.
    parts = [
        _part(tmp_path / f'.out.parquet.rank{rank}.partial.parquet', 100 * rank, n, 2)
        for rank, n in enumerate((5, 3, 4))
    ]
    output = tmp_path / 'out.parquet'
    assert merge_parts(parts, output) == 12
    table = pq.read_table(output)
    expected = [*range(0, 5), *range(100, 103), *range(200, 204)]
    assert table.column('lon').to_pylist() == expected
    assert table.column('emb_000').to_pylist() == [2 * v for v in expected]
    assert not any(part.exists() for part in parts)
    # Nothing but the output is left in the folder (no temporary file).
    assert [p.name for p in tmp_path.iterdir()] == ['out.parquet']
    assert os.stat(output).st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_merge_parts_moves_a_single_part(tmp_path) -> None:
    part = _part(tmp_path / '.p.partial.parquet', 0, 7, 3)
    output = tmp_path / 'sub' / 'out.parquet'
    assert merge_parts([part], output) == 7
    assert not part.exists()
    assert pq.read_table(output).column('lat').to_pylist() == [-v for v in range(7)]


def test_merge_parts_refuses_parts_with_other_columns(tmp_path) -> None:
    first = _part(tmp_path / 'a.parquet', 0, 2, 2)
    second = tmp_path / 'b.parquet'
    pq.write_table(pa.table({'lon': [1.0], 'lat': [2.0]}), second)
    with pytest.raises(ValueError, match='other columns'):
        merge_parts([first, second], tmp_path / 'out.parquet')
    assert not (tmp_path / 'out.parquet').exists()
    assert first.exists() and second.exists()  # kept for a retry


def test_merge_parts_keeps_an_existing_output_without_overwrite(tmp_path) -> None:
    output = tmp_path / 'out.parquet'
    output.write_bytes(b'old')
    part = _part(tmp_path / 'a.parquet', 0, 2, 2)
    with pytest.raises(OutputExistsError):
        merge_parts([part], output)
    assert output.read_bytes() == b'old'
    assert merge_parts([part], output, overwrite=True) == 2


def test_prediction_table_columns_and_types() -> None:
    prediction = {
        'point': torch.tensor([[10.5, -20.25], [0.0, 1.0]]),
        'location_embedding': torch.arange(6.0).reshape(2, 3),
        'image_embedding': torch.ones(2, 2, dtype=torch.bfloat16),
    }
    table = prediction_table(prediction)
    assert table.schema.names == [
        'lon',
        'lat',
        'emb_000',
        'emb_001',
        'emb_002',
        'img_emb_000',
        'img_emb_001',
    ]
    assert table.column('lon').to_pylist() == [10.5, 0.0]
    assert table.column('lat').to_pylist() == [-20.25, 1.0]
    assert table.column('emb_002').to_pylist() == [2.0, 5.0]
    assert table.schema.field('lon').type == pa.float32()
    assert table.schema.field('img_emb_000').type == pa.float32()
    # float64 points keep their precision.
    exact = prediction_table(
        {
            'point': torch.tensor([[0.1, 0.2]], dtype=torch.float64),
            'location_embedding': torch.zeros(1, 1),
        }
    )
    assert exact.column('lon').to_pylist() == [0.1]


def test_prediction_table_refuses_other_outputs() -> None:
    with pytest.raises(ValueError, match="'point' and 'location_embedding'"):
        prediction_table({'logits': torch.zeros(2, 3)})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r'must be \(2, D\)'):
        prediction_table(
            {'point': torch.zeros(2, 2), 'location_embedding': torch.zeros(3, 4)}
        )


@pytest.mark.parametrize('name', ['out.csv', 'out.npy', 'out'])
def test_output_must_be_parquet(tmp_path, name) -> None:
    with pytest.raises(ValueError, match=r'must be a \.parquet file'):
        EmbeddingWriter(tmp_path / name)


def test_output_folder_must_be_writable(tmp_path) -> None:
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(ValueError, match='is a file, not a folder'):
        check_prediction_output(blocker / 'out.parquet')


def test_existing_output_is_refused_before_predicting(tmp_path) -> None:
    output = tmp_path / 'out.parquet'
    output.write_bytes(b'')
    with pytest.raises(OutputExistsError, match='--overwrite'):
        EmbeddingWriter(output)
    EmbeddingWriter(output, overwrite=True)


class _Points(pl.LightningModule):
    """Predicts like SatCLIPPretraining: points, location and image embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 3)

    def predict_step(self, batch: list[Tensor], batch_idx: int) -> dict[str, Tensor]:
        points = batch[0]
        return {
            'point': points,
            'location_embedding': self.layer(points),
            'image_embedding': points.sum(dim=1, keepdim=True),
        }


def test_writer_streams_every_batch_into_one_file(tmp_path) -> None:
    torch.manual_seed(0)
    points = torch.rand(23, 2) * torch.tensor([360.0, 180.0]) - torch.tensor(
        [180.0, 90.0]
    )
    loader = DataLoader(TensorDataset(points), batch_size=4)
    output = tmp_path / 'out' / 'emb.parquet'
    writer = EmbeddingWriter(output, rows_per_group=8)
    model = _Points()
    trainer = pl.Trainer(
        accelerator='cpu',
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[writer],
    )
    assert trainer.predict(model, loader, return_predictions=False) is None
    file = pq.ParquetFile(output)
    # Rows are gathered into groups of at least rows_per_group: 8, 8, 7.
    assert [file.metadata.row_group(i).num_rows for i in range(3)] == [8, 8, 7]
    table = file.read()
    np.testing.assert_array_equal(table.column('lon').to_numpy(), points[:, 0])
    np.testing.assert_array_equal(table.column('lat').to_numpy(), points[:, 1])
    with torch.no_grad():
        expected = model.layer(points).numpy()
    written = np.stack([table.column(f'emb_{i:03d}').to_numpy() for i in range(3)], 1)
    np.testing.assert_allclose(written, expected, rtol=1e-6)
    np.testing.assert_allclose(
        table.column('img_emb_000').to_numpy(), points.sum(1).numpy(), rtol=1e-6
    )
    assert sorted(p.name for p in output.parent.iterdir()) == ['emb.parquet']


def test_writer_removes_its_part_when_prediction_fails(tmp_path) -> None:
    class Failing(_Points):
        def predict_step(
            self, batch: list[Tensor], batch_idx: int
        ) -> dict[str, Tensor]:
            if batch_idx == 2:
                raise RuntimeError('boom')
            return super().predict_step(batch, batch_idx)

    loader = DataLoader(TensorDataset(torch.zeros(12, 2)), batch_size=2)
    writer = EmbeddingWriter(tmp_path / 'emb.parquet', rows_per_group=1)
    trainer = pl.Trainer(
        accelerator='cpu', logger=False, enable_progress_bar=False, callbacks=[writer]
    )
    with pytest.raises(RuntimeError, match='boom'):
        trainer.predict(Failing(), loader, return_predictions=False)
    assert list(tmp_path.iterdir()) == []


def test_predict_refuses_a_non_parquet_output_in_one_line(tmp_path, capsys) -> None:
    # Refused before the model or the data are built: the config's data
    # folder does not even exist.
    config = pathlib.Path(__file__).parents[2] / 'configs' / 'sh_l10_resnet18.yaml'
    status = main(['predict', f'--config={config}', f'--output={tmp_path / "emb.csv"}'])
    assert status == 1
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'must be a .parquet file' in err
    assert err.count('\n') == 1


def test_output_option_belongs_to_predict_only(tmp_path, capsys) -> None:
    config = pathlib.Path(__file__).parents[2] / 'configs' / 'sh_l10_resnet18.yaml'
    status = main(['fit', f'--config={config}', f'--output={tmp_path / "e.parquet"}'])
    assert status == 1
    assert 'unrecognized arguments: --output' in capsys.readouterr().err
