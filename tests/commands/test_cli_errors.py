"""User errors print one line and exit 1; bugs keep their traceback."""

import pathlib

import pytest
import torch

import satclip_tg.cli as cli
from satclip_tg.cli import main
from satclip_tg.commands.errors import summarise_config_error, user_error_message

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEMO = str(ROOT / 'configs' / 'demo.yaml')
# A config whose model builds without any prepared data (unlike the demo's
# MOSAIKS backbone, which draws its filters from data/bluemarble-demo).
RESNET = str(ROOT / 'configs' / 'sh_l10_resnet18.yaml')
NO_WEIGHTS = '--model.init_args.weights=null'


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    # main() returned, so no exception escaped it; the usage is not printed.
    err = capsys.readouterr().err
    assert 'usage:' not in err
    lines = [line for line in err.splitlines() if line.startswith('error:')]
    assert len(lines) == 1, err
    return err[err.index('error:') :]


@pytest.mark.parametrize(
    ('extra', 'expected'),
    [
        (['--model.init_args.lrr', '0.1'], "Option 'lrr' is not accepted"),
        (['--trainer.max_epochs', 'abc'], 'trainer.max_epochs: Expected'),
        (
            [NO_WEIGHTS, '--data.init_args.batch_size', '0'],
            'batch_size must be at least 1',
        ),
        (['--model.init_args.model', 'resnet1888'], "Did you mean 'resnet18'"),
    ],
)
def test_config_errors_are_one_message_with_the_key(extra, expected, capsys) -> None:
    config = RESNET if NO_WEIGHTS in extra else DEMO
    assert main(['fit', f'--config={config}', *extra]) == 1
    message = one_error_line(capsys)
    assert expected in message
    assert len(message.splitlines()) <= 4


def test_a_typo_gets_a_close_match(capsys) -> None:
    assert main(['fit', f'--config={DEMO}', '--model.init_args.lrr', '0.1']) == 1
    message = one_error_line(capsys)
    assert message.startswith('error: model (satclip_tg.tasks.SatCLIPPretraining)')
    assert "did you mean 'lr'?" in message


def test_missing_config_and_bad_accelerator(tmp_path, capsys) -> None:
    assert main(['fit', f'--config={tmp_path / "none.yaml"}']) == 1
    assert 'config: File does not exist' in one_error_line(capsys)
    for bad in ('--trainer.accelerator=cuda', '--trainer.devices=abc'):
        if bad.endswith('cuda') and torch.cuda.is_available():
            continue
        assert main(['validate', f'--config={DEMO}', bad]) == 1
        assert 'error:' in one_error_line(capsys)


def test_debug_shows_the_traceback(monkeypatch, tmp_path) -> None:
    with pytest.raises(Exception, match='File does not exist'):
        main(['--debug', 'fit', f'--config={tmp_path / "none.yaml"}'])
    monkeypatch.setenv('SATCLIP_TG_DEBUG', '1')
    with pytest.raises(Exception, match='File does not exist'):
        main(['fit', f'--config={tmp_path / "none.yaml"}'])


def test_ctrl_c_prints_one_line(monkeypatch, capsys) -> None:
    def interrupted(arguments):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, 'run_lightning', interrupted)
    assert main(['fit', f'--config={DEMO}']) == 130
    err = capsys.readouterr().err
    assert err.strip() == 'interrupted (Ctrl-C)'


def test_bugs_keep_their_traceback(monkeypatch) -> None:
    def broken(arguments):
        raise RuntimeError('a bug')

    monkeypatch.setattr(cli, 'run_lightning', broken)
    with pytest.raises(RuntimeError, match='a bug'):
        main(['fit', f'--config={DEMO}'])


def test_which_errors_are_the_users() -> None:
    from satclip_tg.features import FeatureCacheError
    from satclip_tg.plugins.manager import UnknownComponentError
    from satclip_tg.resources import HostMemoryError

    assert user_error_message(FeatureCacheError('cache')) == 'cache'
    assert user_error_message(HostMemoryError('memory')) == 'memory'
    assert user_error_message(FileNotFoundError('gone')) == 'gone'
    unknown = UnknownComponentError('unknown network nope')
    assert "unknown network 'nope'" not in (user_error_message(unknown) or 'x')
    assert 'unknown network nope' in (user_error_message(unknown) or '')
    assert user_error_message(RuntimeError('bug')) is None
    assert user_error_message(TypeError('bug')) is None


def test_summary_drops_the_union_plumbing() -> None:
    message = (
        'Parser key "trainer.max_epochs":\n'
        '  Does not validate against any of the Union subtypes\n'
        "  Subtypes: [<class 'int'>, <class 'NoneType'>]\n"
        '  Errors:\n'
        "    - Expected a <class 'int'>\n"
        "    - Expected a <class 'NoneType'>\n"
        "  Given value type: <class 'str'>\n"
        '  Given value: abc'
    )
    assert summarise_config_error(message) == (
        "trainer.max_epochs: Expected a <class 'int'>"
    )
