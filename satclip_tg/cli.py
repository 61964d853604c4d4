"""The ``satclip-tg`` command line.

``satclip-tg fit|validate|test|predict`` is a LightningCLI in the style of
TorchGeo's own: the model is any `torchgeo.tasks.BaseTask` and the data any
`torchgeo.datamodules.BaseDataModule`, given by class path (or class name) in
YAML. The other sub-commands are satclip-tg's own tools.
"""

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Collection, Sequence
from typing import Any

from . import __version__

__all__ = [
    'COMMAND_MODULES',
    'LIGHTNING_COMMANDS',
    'build_parser',
    'lightning_cli',
    'main',
    'run_lightning',
]

#: Environment variable that, set to 1, shows tracebacks of user errors.
DEBUG_VARIABLE = 'SATCLIP_TG_DEBUG'

#: Sub-commands handled by LightningCLI.
LIGHTNING_COMMANDS = ('fit', 'validate', 'test', 'predict')

#: Modules of `satclip_tg.commands` providing the other sub-commands; each
#: names its sub-command (``embed_grid`` is ``embed-grid``), defines ``HELP``,
#: its one-line help, and ``register(subparsers)``, and imports nothing heavy
#: before it runs.
COMMAND_MODULES = (
    'plugins',
    'data',
    'demo',
    'cache_features',
    'embed',
    'embed_grid',
    'benchmark',
    'weights',
    'export',
)

# GDAL settings that make reading many small GeoTIFFs fast (as TorchGeo's CLI).
_RASTERIO_SETTINGS = {
    'GDAL_DISABLE_READDIR_ON_OPEN': 'EMPTY_DIR',
    'GDAL_MAX_RAW_BLOCK_CACHE_SIZE': '200000000',
    'GDAL_SWATH_SIZE': '200000000',
}


def lightning_cli(args: Sequence[str], run: bool = True) -> Any:
    """Build satclip-tg's LightningCLI on ``args`` (and run it with ``run``).

    Args:
        args: The command-line arguments, without the program name; with
            ``run`` they start with fit/validate/test/predict, without it they
            are only options such as ``--config``.
        run: Run the sub-command; otherwise only instantiate the model, the
            data module and the trainer of the configuration.

    Returns:
        The `lightning.pytorch.cli.LightningCLI`.
    """
    from torchgeo.datamodules import BaseDataModule
    from torchgeo.tasks import BaseTask

    # Imported so that YAML may name these classes without their module.
    import satclip_tg.datamodules
    import satclip_tg.tasks  # noqa: F401

    from .commands.lightning_cli import SatCLIPLightningCLI

    for key, value in _RASTERIO_SETTINGS.items():
        os.environ.setdefault(key, value)
    with warnings.catch_warnings():
        # satclip-tg passes the arguments on purpose; the warning that they
        # differ from sys.argv would print on every run.
        warnings.filterwarnings('ignore', message=r".*LightningCLI's args parameter")
        return SatCLIPLightningCLI(
            model_class=BaseTask,
            datamodule_class=BaseDataModule,
            seed_everything_default=0,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_kwargs={'overwrite': True},
            # Errors come back as exceptions, so that main() prints one line
            # instead of the whole usage.
            parser_kwargs={
                'version': f'satclip-tg {__version__}',
                'exit_on_error': False,
            },
            args=list(args),
            run=run,
        )


def run_lightning(args: Sequence[str]) -> None:
    """Run LightningCLI on ``args`` (starting with fit/validate/test/predict).

    Args:
        args: The command-line arguments, without the program name.
    """
    lightning_cli(args)


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    """Build the argument parser of the ``satclip-tg`` command.

    Args:
        commands: The sub-commands to build in full; the others get only their
            name and one-line help, which is all the top-level ``--help``
            shows, so that what only their options need is not imported.
            Default: all of them.

    Returns:
        The parser.
    """
    parser = argparse.ArgumentParser(
        prog='satclip-tg',
        description='SatCLIP location encoders for TorchGeo.',
        epilog='Training: satclip-tg {fit,validate,test,predict} --config '
        'CONFIG.yaml (LightningCLI; see satclip-tg fit --help).',
    )
    parser.add_argument(
        '--version', action='version', version=f'%(prog)s {__version__}'
    )
    parser.add_argument(
        '--debug',
        action='store_true',
        help=f'show the traceback of user errors too (or set {DEBUG_VARIABLE}=1)',
    )
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(f'{__package__}.commands.{module_name}')
        name = module_name.replace('_', '-')
        if commands is None or name in commands:
            module.register(subparsers)
        else:
            subparsers.add_parser(name, help=module.HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    User errors (see `satclip_tg.commands.errors.user_error_message`) print
    one ``error: ...`` message and return 1; Ctrl-C prints one line and
    returns 130. ``--debug`` anywhere in the arguments, or the environment
    variable ``SATCLIP_TG_DEBUG=1``, shows their tracebacks instead.

    Args:
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns:
        The exit status.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    debug = '--debug' in arguments or os.environ.get(DEBUG_VARIABLE, '') not in (
        '',
        '0',
    )
    arguments = [argument for argument in arguments if argument != '--debug']
    try:
        return _dispatch(arguments)
    except KeyboardInterrupt:
        if debug:
            raise
        print('interrupted (Ctrl-C)', file=sys.stderr)
        return 130
    except Exception as error:
        from .commands.errors import user_error_message

        message = None if debug else user_error_message(error)
        if message is None:
            raise
        print(f'error: {message}', file=sys.stderr)
        return 1


def _dispatch(arguments: list[str]) -> int:
    if arguments and arguments[0] in LIGHTNING_COMMANDS:
        run_lightning(arguments)
        return 0
    # Only the sub-command that runs is built in full: `satclip-tg embed` must
    # not import the evaluation code or the demo for their options.
    parser = build_parser(arguments[:1])
    args = parser.parse_args(arguments)
    if args.command is None:
        parser.print_help()
        return 2
    status: int = args.handler(args)
    return status
