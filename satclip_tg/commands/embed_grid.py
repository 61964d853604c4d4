"""``satclip-tg embed-grid``: a GeoTIFF of embeddings on a regular grid."""

import argparse
import pathlib
from typing import Any

from ..resources import format_bytes, free_disk_bytes
from .embed import (
    add_encoder_arguments,
    check_output_absent,
    check_output_writable,
    load_encoder_from_args,
)
from .errors import report_error

__all__ = ['CONFIRM_BYTES', 'register', 'run']

#: The one-line help of the sub-command, listed by ``satclip-tg --help``.
HELP = 'write a multi-band GeoTIFF of embeddings on a lon/lat grid'

#: Rasters larger than this (uncompressed) are written only with ``--yes``.
CONFIRM_BYTES = 2_000_000_000

_EPILOG = """\
examples:
  satclip-tg embed-grid --encoder microsoft/SatCLIP-ViT16-L40 \\
      --resolution 0.5 --output world_emb.tif --pca 3
  satclip-tg embed-grid --encoder ./satclip-resnet50-l40.ckpt \\
      --bbox 5.9 45.8 10.5 47.8 --resolution 0.01 --output swiss_emb.tif

The raster is float32, EPSG:4326, tiled and compressed, with one band per
embedding dimension (descriptions emb_000, emb_001, ...); row 0 is the
northern edge and cell values are the embeddings of the cell centres.

size: cells x bands x 4 bytes (float32) before compression, which saves
little on embeddings (a fifth to a quarter in our tests; it cannot be known
in advance, so the uncompressed size is what is checked). The global grid is
(360 / DEG) x (180 / DEG) cells, so with 256 bands (1,024 bytes a cell):
  1 degree      360 x  180 =  64,800 cells ->  66 MB
  0.1 degree   3600 x 1800 = 6,480,000 cells -> 6.6 GB
  0.02 degree 18000 x 9000 = 162,000,000 cells -> 166 GB
Before writing, the command prints this size and a run time measured on a
sample of cells; it refuses when the output folder has less free space than
the uncompressed size, and above 2 GB it stops unless --yes is given (it
never prompts).
"""


def register(subparsers: Any) -> None:
    """Add the ``embed-grid`` sub-command.

    Args:
        subparsers: The object returned by ``add_subparsers``.
    """
    parser = subparsers.add_parser(
        'embed-grid',
        help=HELP,
        description='Embed the centre of every cell of a regular lon/lat grid\n'
        'and write a float32 GeoTIFF (EPSG:4326) with one band per embedding\n'
        'dimension, computed in bounded memory.',
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_encoder_arguments(parser)
    parser.add_argument(
        '--bbox',
        nargs=4,
        type=float,
        metavar=('MINLON', 'MINLAT', 'MAXLON', 'MAXLAT'),
        default=(-180.0, -90.0, 180.0, 90.0),
        help='cell edges in degrees (default: the whole globe)',
    )
    parser.add_argument(
        '--resolution',
        type=float,
        required=True,
        metavar='DEG',
        help='cell size in degrees; the bbox must be a whole number of cells',
    )
    parser.add_argument('--output', required=True, help='output GeoTIFF (.tif)')
    parser.add_argument(
        '--pca',
        type=int,
        choices=(1, 3),
        help='also write a PNG preview of the first principal components '
        '(3: RGB, 1: grey)',
    )
    parser.add_argument(
        '--preview', help='path of the PNG preview (default: OUTPUT with .png)'
    )
    parser.add_argument(
        '--compress',
        choices=('deflate', 'zstd', 'lzw', 'none'),
        default='deflate',
        help='GeoTIFF compression (default deflate, readable everywhere; zstd '
        'is faster)',
    )
    parser.add_argument(
        '--tile-size', type=int, default=256, help='tile size in pixels (256)'
    )
    parser.add_argument(
        '--chunk-cells',
        type=int,
        default=1 << 16,
        help='cells computed at once (tile-aligned); bounds the working memory '
        '(default 65536)',
    )
    parser.add_argument(
        '--yes',
        action='store_true',
        help='write rasters larger than 2 GB (uncompressed) without stopping',
    )
    parser.add_argument(
        '--no-factorization',
        action='store_true',
        help='evaluate every cell independently instead of the (exact, much '
        'faster) row factorisation; for checking only',
    )
    parser.set_defaults(handler=run)


def _format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f'{max(seconds, 1):.0f} s'
    if seconds < 5400:
        return f'{seconds / 60:.0f} min'
    return f'{seconds / 3600:.1f} h'


def run(args: argparse.Namespace) -> int:
    """Write the embedding raster.

    Args:
        args: Parsed arguments.

    Returns:
        0 on success, 1 on an error (explained on stderr).
    """
    from .. import __version__
    from ..atomic import OutputExistsError
    from ..embedding.grid import GridSpec, estimate_grid_output, write_grid_geotiff
    from ..pretrained import CheckpointError, get_pretrained_info

    output = pathlib.Path(args.output)
    preview = None
    if args.pca:
        preview = (
            pathlib.Path(args.preview) if args.preview else output.with_suffix('.png')
        )
    try:
        if output.suffix.lower() not in ('.tif', '.tiff'):
            raise ValueError(f'output {args.output!r} must end in .tif or .tiff')
        if preview is not None and preview.resolve() == output.resolve():
            raise ValueError('--preview must differ from --output')
        if args.chunk_cells < 1:
            raise ValueError(f'--chunk-cells must be positive, got {args.chunk_cells}')
        if args.tile_size < 16 or args.tile_size % 16:
            raise ValueError(
                f'--tile-size must be a positive multiple of 16, got {args.tile_size}'
            )
        grid = GridSpec.from_bbox(tuple(args.bbox), args.resolution)
        for path in (output, preview):
            if path is not None:
                check_output_writable(path)
                check_output_absent(str(path), args.overwrite)
    except (ValueError, OutputExistsError) as error:
        return report_error(str(error))
    try:
        encoder = load_encoder_from_args(args)
    except (CheckpointError, OSError, ValueError) as error:
        return report_error(str(error))
    factorize = False if args.no_factorization else None
    estimate = estimate_grid_output(
        encoder,
        grid,
        compress=args.compress,
        tile_size=args.tile_size,
        pca_components=args.pca,
        factorize=factorize,
    )
    folder = output.absolute().parent
    free = free_disk_bytes(folder)
    size = (
        f'{estimate.cells:,} cells x {estimate.bands} bands x 4 B = '
        f'{format_bytes(estimate.raster_bytes)} uncompressed'
    )
    if estimate.file_bytes > estimate.raster_bytes:
        size += (
            f' ({format_bytes(estimate.file_bytes)} on disk: without compression '
            f'the edge tiles are padded to {args.tile_size} x {args.tile_size})'
        )
    if estimate.preview_bytes:
        size += f' (+ {format_bytes(estimate.preview_bytes)} preview)'
    duration = (
        f'about {_format_seconds(estimate.seconds)}'
        if estimate.seconds is not None
        else 'a few seconds'
    )
    if not args.quiet:
        timing = (
            f' (timed on {estimate.sample_cells:,} cells)'
            if estimate.sample_cells
            else ''
        )
        print(
            f'estimate: {size}, '
            f'{duration}{timing}; free in {folder}: {format_bytes(free)}'
        )
    if estimate.total_bytes > free:
        return report_error(
            f'not enough disk space: the raster needs up to {size}, but only '
            f'{format_bytes(free)} is free in {folder}; choose a smaller --bbox, a '
            f'coarser --resolution or another folder'
        )
    if estimate.total_bytes > CONFIRM_BYTES and not args.yes:
        return report_error(
            f'the raster would be large: {size}, {duration}; add --yes to write '
            f'it (or choose a smaller --bbox or a coarser --resolution)'
        )
    info = get_pretrained_info(encoder)
    label = info.source if info else args.encoder
    try:
        result = write_grid_geotiff(
            encoder,
            grid,
            output,
            overwrite=args.overwrite,
            tile_size=args.tile_size,
            chunk_cells=args.chunk_cells,
            compress=args.compress,
            pca_components=args.pca,
            preview_path=preview,
            progress=not args.quiet,
            tags={
                'satclip_tg_encoder': str(label),
                'satclip_tg_version': __version__,
                'satclip_tg_precision': args.precision,
                'satclip_tg_cell_values': 'embedding of the cell centre',
            },
            factorize=factorize,
        )
    except (OSError, ValueError) as error:
        return report_error(f'could not write {args.output}: {error}')
    if not args.quiet:
        cells = grid.width * grid.height
        rate = cells / result.seconds if result.seconds > 0 else float('inf')
        method = 'row-factorised' if result.factorized else 'per cell'
        print(
            f'wrote {result.path}: {grid.width} x {grid.height} cells of '
            f'{grid.resolution:g} degrees, {result.bands} float32 bands, EPSG:4326, '
            f'with {label} in {result.seconds:.1f} s ({rate:,.0f} cells/s, {method})'
        )
        if result.preview is not None:
            print(f'wrote {result.preview}: PCA preview ({args.pca} components)')
    return 0
