"""``satclip-tg export``: write a location encoder in another library's format."""

import argparse
from typing import Any

__all__ = ['register', 'run']

#: The one-line help of the sub-command, listed by ``satclip-tg --help``.
HELP = 'export a location encoder (e.g. as torchgeo.models.SatCLIP weights)'

_EPILOG = """\
example:
  satclip-tg export --format torchgeo --encoder runs/demo-.../satclip-demo.ckpt \\
      --output satclip_torchgeo.pt

then, in Python:
  model = torchgeo.models.SatCLIP(legendre_polys=..., capacity=..., ...)
  model.load_state_dict(torch.load('satclip_torchgeo.pt'), strict=True)

The constructor arguments are printed and stored in OUTPUT.json, with the
source's model card. Encoders TorchGeo's SatCLIP cannot represent (other
encodings or networks) are refused.
"""


def register(subparsers: Any) -> None:
    """Add the ``export`` sub-command.

    Args:
        subparsers: The object returned by ``add_subparsers``.
    """
    from ..export import EXPORT_FORMATS

    parser = subparsers.add_parser(
        'export',
        help=HELP,
        description='Export a location encoder as weights another library loads.',
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        '--format', required=True, choices=EXPORT_FORMATS, help='target format'
    )
    parser.add_argument(
        '--encoder',
        required=True,
        metavar='SOURCE',
        help='checkpoint path, registered weights name (satclip-tg weights list), '
        'Hugging Face id or SatCLIP_Weights name',
    )
    parser.add_argument('--output', required=True, help='state-dict file (.pt)')
    parser.add_argument(
        '--precision',
        choices=('float32', 'float64'),
        default='float32',
        help='dtype of the exported tensors (float32, as TorchGeo builds by default)',
    )
    parser.add_argument(
        '--offline', action='store_true', help='never download a remote source'
    )
    parser.add_argument(
        '--overwrite', action='store_true', help='replace existing output files'
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Export the encoder.

    Args:
        args: Parsed arguments.

    Returns:
        0 on success.
    """
    import torch

    from ..atomic import check_writable
    from ..export import export_torchgeo

    check_writable(args.output)
    result = export_torchgeo(
        args.encoder,
        args.output,
        overwrite=args.overwrite,
        dtype=torch.float64 if args.precision == 'float64' else torch.float32,
        local_files_only=args.offline,
    )
    print(f'wrote {result.output} and {result.sidecar}')
    print(f'load it with: model = {result.constructor}')
    print(f"              model.load_state_dict(torch.load('{result.output}'))")
    for note in result.notes:
        print(f'note: {note}')
    return 0
