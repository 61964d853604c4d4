"""The prepared GPU check runs end to end (here at toy sizes on the CPU)."""

import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / 'benchmarks' / 'gpu_check.py'


def test_gpu_check_smoke_run(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setattr(
        sys, 'argv', [str(SCRIPT), '--smoke', '--workdir', str(tmp_path)]
    )
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(SCRIPT), run_name='__main__')
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for step in ('1. live fit', '2. cache-features', '3. cached fit'):
        assert step in out
    assert list(tmp_path.iterdir()) == []  # the work folder is cleaned up
