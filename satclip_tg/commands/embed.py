"""``satclip-tg embed``: embed the points of a table or vector file."""

import argparse
import os
import pathlib
import sys
import time
import warnings
from typing import Any

from .errors import report_error

__all__ = [
    'add_encoder_arguments',
    'check_not_input',
    'check_output_absent',
    'check_output_writable',
    'load_encoder_from_args',
    'register',
    'run',
]

#: The one-line help of the sub-command, listed by ``satclip-tg --help``.
HELP = 'embed the points of a CSV, Parquet or vector file'

_EPILOG = """\
examples:
  satclip-tg embed --encoder microsoft/SatCLIP-ViT16-L40 \\
      --input stations.csv --output stations_emb.parquet
  satclip-tg embed --encoder ./satclip-resnet50-l10.ckpt --input sites.gpkg \\
      --output sites.npy --device auto --on-invalid nan

Parquet and CSV outputs keep every input column and append one float32 column
per embedding dimension (emb_000, emb_001, ...); .npy holds the (N, D) float32
array alone, in input order.

Refused before the encoder runs: an unreadable input (wrong --encoding, a
binary or truncated file), duplicated, ambiguous or non-numeric (e.g. boolean)
coordinate columns, a vector layer without CRS whose coordinates are not
degrees, an output that is the input, and an output folder that cannot be
written. Projected vector layers are reprojected to EPSG:4326.
"""


def add_encoder_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options that choose and place the encoder.

    Args:
        parser: The sub-command parser.
    """
    parser.add_argument(
        '--encoder',
        required=True,
        metavar='SOURCE',
        help='checkpoint path (official SatCLIP .ckpt, satclip-tg checkpoint, '
        'TorchGeo state dict), Hugging Face id such as '
        'microsoft/SatCLIP-ViT16-L40, SatCLIP_Weights.SATCLIP_VIT16_L40, or a '
        'name registered with satclip-tg weights register',
    )
    parser.add_argument(
        '--device',
        default='auto',
        help="'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when available; default)",
    )
    parser.add_argument(
        '--precision',
        choices=('float32', 'float64'),
        default='float32',
        help='arithmetic of the encoder (output is float32 either way); '
        'float32 is within 2e-4 of float64',
    )
    parser.add_argument(
        '--offline',
        action='store_true',
        help='never download: use local files and the Hugging Face / torch hub '
        'caches only',
    )
    parser.add_argument(
        '--revision', help='Hugging Face revision (default: the pinned one, or main)'
    )
    parser.add_argument(
        '--overwrite', action='store_true', help='replace existing output files'
    )
    parser.add_argument(
        '--quiet', action='store_true', help='no progress bar and no summary'
    )


def register(subparsers: Any) -> None:
    """Add the ``embed`` sub-command.

    Args:
        subparsers: The object returned by ``add_subparsers``.
    """
    parser = subparsers.add_parser(
        'embed',
        help=HELP,
        description='Embed every point of a CSV/Parquet table (lon/lat columns)\n'
        'or vector file (GeoJSON, GeoPackage, ...) with a pretrained location\n'
        'encoder, and write the embeddings with the input columns.',
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_encoder_arguments(parser)
    parser.add_argument(
        '--input', required=True, help='.csv, .parquet, .geojson, .gpkg, ...'
    )
    parser.add_argument(
        '--output', required=True, help='.parquet, .csv or .npy (by suffix)'
    )
    parser.add_argument(
        '--lon-col', help='longitude column (default: lon, longitude, lng, x)'
    )
    parser.add_argument('--lat-col', help='latitude column (default: lat, latitude, y)')
    parser.add_argument(
        '--encoding',
        default='utf-8',
        help='text encoding of a CSV input (default utf-8; e.g. latin-1, cp1252, '
        'utf-16)',
    )
    parser.add_argument(
        '--batch-size', type=int, default=8192, help='points per batch (8192)'
    )
    parser.add_argument(
        '--on-invalid',
        choices=('error', 'nan'),
        default='error',
        help='rows with missing or out-of-range coordinates: stop with an error '
        '(default) or give them NaN embeddings; rows are never dropped',
    )
    parser.add_argument(
        '--column-prefix',
        default='emb_',
        help="prefix of the embedding columns (default 'emb_')",
    )
    parser.set_defaults(handler=run)


def check_output_absent(path: str, overwrite: bool) -> None:
    """Fail early, before any work, if an output exists and may not be replaced.

    Args:
        path: The output path.
        overwrite: Whether replacing it is allowed.

    Raises:
        OutputExistsError: If it exists and ``overwrite`` is false.
    """
    from ..atomic import OutputExistsError

    if pathlib.Path(path).exists() and not overwrite:
        raise OutputExistsError(
            f'{path} already exists; pass --overwrite to replace it, or choose '
            f'another output path'
        )


def check_output_writable(path: str | os.PathLike[str]) -> None:
    """Fail early, before any work, if an output file could not be created.

    Args:
        path: The output path.

    Raises:
        ValueError: As `satclip_tg.atomic.check_writable`.
    """
    from ..atomic import check_writable

    check_writable(path)


def check_not_input(
    output: str | os.PathLike[str], source: str | os.PathLike[str]
) -> None:
    """Refuse an output that is the input file itself, however it is spelled.

    Args:
        output: The output path.
        source: The input path.

    Raises:
        ValueError: If both name the same file (after resolving symbolic
            links and relative paths; hard links too when both exist).
    """
    out, inp = pathlib.Path(output), pathlib.Path(source)
    same = out.resolve() == inp.resolve()
    if not same and out.exists() and inp.exists():
        same = os.path.samefile(out, inp)
    if same:
        raise ValueError(
            f'the output {str(output)!r} is the input file {str(source)!r}; '
            f'choose another output path (the input is never overwritten)'
        )


def load_encoder_from_args(args: argparse.Namespace) -> Any:
    """Load the encoder that ``--encoder`` and friends describe.

    Args:
        args: Parsed arguments.

    Returns:
        The encoder, in eval mode on the chosen device.
    """
    import torch

    from ..pretrained import load_location_encoder

    dtype = torch.float64 if args.precision == 'float64' else torch.float32
    return load_location_encoder(
        args.encoder,
        args.device,
        dtype=dtype,
        revision=args.revision,
        local_files_only=args.offline,
    )


def _format_count(value: int) -> str:
    return f'{value:,}'


def run(args: argparse.Namespace) -> int:
    """Embed the points of ``--input`` into ``--output``.

    Args:
        args: Parsed arguments.

    Returns:
        0 on success, 1 on an error (explained on stderr).
    """
    import numpy as np

    from ..atomic import OutputExistsError, atomic_output
    from ..embedding.engine import embed_points
    from ..embedding.points_io import (
        check_column_clash,
        check_encoding,
        check_output_path,
        describe_invalid,
        embedding_columns,
        invalid_rows,
        read_points,
        write_embeddings,
    )
    from ..pretrained import CheckpointError, get_pretrained_info

    try:
        check_output_path(args.output)
        if args.batch_size < 1:
            raise ValueError(f'--batch-size must be positive, got {args.batch_size}')
        check_encoding(args.encoding)
        # Before the existence check: with --overwrite it would replace the input.
        check_not_input(args.output, args.input)
        check_output_writable(args.output)
        check_output_absent(args.output, args.overwrite)
    except (ValueError, OutputExistsError) as error:
        return report_error(str(error))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            table = read_points(
                args.input, args.lon_col, args.lat_col, encoding=args.encoding
            )
        for warning in caught:
            print(f'satclip-tg: warning: {warning.message}', file=sys.stderr)
    except (OSError, ValueError) as error:
        return report_error(str(error))
    bad = invalid_rows(table.lon, table.lat)
    if bad.any() and args.on_invalid == 'error':
        return report_error(
            describe_invalid(table, bad)
            + ' Fix them, or pass --on-invalid nan to give them NaN embeddings.'
        )
    try:
        encoder = load_encoder_from_args(args)
    except (CheckpointError, OSError, ValueError) as error:
        return report_error(str(error))
    if not str(args.output).lower().endswith('.npy') and encoder.embed_dim:
        try:
            check_column_clash(
                table, embedding_columns(encoder.embed_dim, args.column_prefix)
            )
        except ValueError as error:
            return report_error(str(error))
    started = time.perf_counter()
    valid = ~bad
    # `invalid_rows` above is the one check of the coordinates on this path.
    valid_embeddings = embed_points(
        encoder,
        table.coords[valid],
        batch_size=args.batch_size,
        progress=not args.quiet,
        validate=False,
    )
    seconds = time.perf_counter() - started
    width = valid_embeddings.shape[1]
    embeddings = np.full((len(table), width), np.nan, dtype=np.float32)
    embeddings[valid] = valid_embeddings
    try:
        with atomic_output(args.output, overwrite=args.overwrite) as temporary:
            write_embeddings(table, embeddings, temporary, args.column_prefix)
    except (OSError, ValueError) as error:
        return report_error(f'could not write {args.output}: {error}')
    if not args.quiet:
        info = get_pretrained_info(encoder)
        label = info.source if info else args.encoder
        count = int(valid.sum())
        rate = count / seconds if seconds > 0 else float('inf')
        device = next(encoder.parameters()).device
        print(
            f'embedded {_format_count(count)} points from {args.input} '
            f'({table.origin}) with {label}: {width}-d, {args.precision} on '
            f'{device}, {seconds:.2f} s ({rate:,.0f} points/s)'
        )
        if bad.any():
            print(
                f'invalid rows: {_format_count(int(bad.sum()))} of '
                f'{_format_count(len(table))} got NaN embeddings '
                f'(first: row {int(np.flatnonzero(bad)[0])})'
            )
        names = embedding_columns(width, args.column_prefix)
        layout = (
            f'({len(table)}, {width}) float32 array'
            if str(args.output).lower().endswith('.npy')
            else f'{len(table.frame.columns)} input columns + {width} float32 '
            f'columns {names[0]}..{names[-1]}'
        )
        print(f'wrote {args.output}: {_format_count(len(table))} rows, {layout}')
    return 0
