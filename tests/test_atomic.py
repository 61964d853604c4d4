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
