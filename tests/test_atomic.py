import pytest

from satclip_tg.atomic import OutputExistsError, atomic_output


def test_success_moves_the_file_into_place(tmp_path) -> None:
    target = tmp_path / 'sub' / 'out.csv'
    with atomic_output(target) as temporary:
        assert temporary.parent == target.parent and temporary.suffix == '.csv'
        temporary.write_text('a,b\n')
        assert not target.exists()
    assert target.read_text() == 'a,b\n'
    assert list(target.parent.iterdir()) == [target]


def test_failure_leaves_nothing_and_keeps_the_old_file(tmp_path) -> None:
    target = tmp_path / 'out.csv'
    target.write_text('old')
    with (
        pytest.raises(RuntimeError),
        atomic_output(target, overwrite=True) as temporary,
    ):
        temporary.write_text('half')
        raise RuntimeError('disk full')
    assert target.read_text() == 'old'
    assert list(tmp_path.iterdir()) == [target]


def test_existing_output_needs_overwrite(tmp_path) -> None:
    target = tmp_path / 'out.csv'
    target.write_text('old')
    with pytest.raises(OutputExistsError, match='--overwrite'), atomic_output(target):
        pass
    with atomic_output(target, overwrite=True) as temporary:
        temporary.write_text('new')
    assert target.read_text() == 'new'


def test_output_gets_the_usual_permissions(tmp_path) -> None:
    import os

    target = tmp_path / 'out.csv'
    with atomic_output(target) as temporary:
        temporary.write_text('x')
    mask = os.umask(0o022)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_leftovers_of_killed_writers_are_removed(tmp_path) -> None:
    import os
    import subprocess
    import sys
    import time

    from satclip_tg.atomic import (
        STALE_AFTER,
        remove_stale_temporaries,
        temporary_prefix,
    )

    final = tmp_path / 'out.csv'
    # A writer that was killed: a finished process's PID on this host.
    dead = subprocess.run(
        [sys.executable, '-c', 'import os; print(os.getpid())'],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    ours = temporary_prefix(final)
    host_tag = ours.removeprefix('.out.csv.').split('.')[0].rpartition('-')[0]
    killed = tmp_path / f'.out.csv.{host_tag}-{pid}.abc123.partial.csv'
    killed.write_text('half')
    killed_dir = tmp_path / f'.out.csv.{host_tag}-{pid}.def456.partial'
    killed_dir.mkdir()
    (killed_dir / 'x').write_text('half')
    running = tmp_path / f'{ours}ghi789.partial.csv'  # this process: alive
    running.write_text('busy')
    old_style = tmp_path / '.out.csv.q1w2e3.partial.csv'  # unknown owner
    old_style.write_text('old')
    recent = tmp_path / '.out.csv.zzz.partial.csv'
    recent.write_text('recent')
    long_ago = time.time() - STALE_AFTER - 60
    os.utime(old_style, (long_ago, long_ago))
    other = tmp_path / '.other.csv.host-1.a.partial.csv'  # another output
    other.write_text('not mine')

    with atomic_output(final) as tmp:
        tmp.write_text('new')
    assert final.read_text() == 'new'
    assert not killed.exists() and not killed_dir.exists()
    assert not old_style.exists()
    assert running.exists() and recent.exists() and other.exists()
    assert remove_stale_temporaries(tmp_path / 'missing' / 'x') == []


def test_check_writable_before_any_work(tmp_path) -> None:
    from satclip_tg.atomic import check_writable

    check_writable(tmp_path / 'new' / 'deeper' / 'out.csv')
    check_writable(tmp_path, folder=True)
    (tmp_path / 'file').write_text('x')
    with pytest.raises(ValueError, match='is a file, not a folder'):
        check_writable(tmp_path / 'file' / 'out.csv')
    with pytest.raises(ValueError, match='is a folder'):
        check_writable(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['file']  # no probe left
