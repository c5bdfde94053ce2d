"""Output sets (docs/reliability.md, "Atomicity and overwriting"): one run at a time per set, nothing replaced
without leave, all or nothing, and what a killed run leaves behind found and finished by the next one. Kills and
races use real processes."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from inversion.storage.files import atomic_write, host_tag, remove_stale_temporaries
from p2p_real.files.output_sets import OutputExistsError, OutputsBusyError, OutputSet, lock_path, reserve

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, cwd: Path, wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    """Run Python code in a child process (the repository importable), in `cwd`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-c", textwrap.dedent(code)]
    if wait:
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def temporaries(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp"))


def text_writer(text: str):
    return lambda tmp: tmp.write_text(text)


def test_a_write_without_replace_never_replaces_a_file_that_appears_meanwhile(tmp_path):
    target = tmp_path / "a.png"

    def racing(tmp: Path) -> None:
        tmp.write_text("mine")
        target.write_text("theirs")  # another run commits first, while this one writes

    with pytest.raises(FileExistsError) as err:
        atomic_write(target, racing, replace=False)
    assert err.value.filename == str(target) and "not replaced" in str(err.value)
    assert target.read_text() == "theirs" and temporaries(tmp_path) == []
    atomic_write(target, text_writer("mine"))  # replace=True (the default) still replaces
    assert target.read_text() == "mine"


def test_a_full_disk_is_an_error_naming_the_file_not_the_temporary(tmp_path):
    def full(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as err:
        atomic_write(tmp_path / "x.grid.png", full)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "x.grid.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_temporaries_of_a_killed_writer_are_found_and_removed_by_the_next_run(tmp_path):
    killed = run_python(
        f"""
        import os, signal
        from inversion.storage.files import atomic_write
        def die(tmp):
            tmp.write_bytes(b"half a png")
            os.kill(os.getpid(), signal.SIGKILL)
        atomic_write({str(tmp_path / "a.png")!r}, die)
        """,
        tmp_path,
    )
    assert killed.returncode == -signal.SIGKILL
    left = temporaries(tmp_path)
    assert len(left) == 1 and left[0].name.startswith(".a.png.p2p-")  # found: our naming, with its process
    mine = tmp_path / f".b.png.p2p-{host_tag()}-{os.getpid()}-x.tmp"  # a live writer's
    elsewhere = tmp_path / ".c.png.p2p-otherhost-1-x.tmp"  # another machine's (a shared folder)
    mine.write_text("")
    elsewhere.write_text("")
    assert remove_stale_temporaries(tmp_path) == left
    assert temporaries(tmp_path) == sorted([mine, elsewhere])


@pytest.mark.slow
def test_a_second_run_cannot_take_outputs_another_run_holds_and_a_kill_frees_them(tmp_path):
    holder = run_python(
        f"""
        import sys, time
        from p2p_real.files.output_sets import reserve
        reserve({str(tmp_path)!r}, "photo", ["photo.0.png", "photo.json"])
        print("held", flush=True)
        time.sleep(120)
        """,
        tmp_path,
        wait=False,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputsBusyError, match=rf"process {holder.pid}\) is writing photo\.\* in"):
            reserve(tmp_path, "photo")
        with reserve(tmp_path, "other"):  # other names in the same folder are free
            pass
    finally:
        holder.kill()
        holder.wait()
    with reserve(tmp_path, "photo") as reservation:  # the kernel released the dead run's lock
        assert reservation.unfinished["pid"] == holder.pid
        assert reservation.may_replace(tmp_path / "photo.0.png")
        assert not reservation.may_replace(tmp_path / "photo.1.png")
    assert not lock_path(tmp_path, "photo").exists()


def test_an_output_set_never_replaces_a_file_that_is_not_its_own(tmp_path):
    paths = [tmp_path / "x.0.png", tmp_path / "x.json"]
    paths[0].write_text("the user's")
    with pytest.raises(OutputExistsError, match=r"x\.0\.png exists"), OutputSet(tmp_path, "x", paths) as files:
        files.write(paths[1], text_writer("{}"))
    assert paths[0].read_text() == "the user's" and not paths[1].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.0.png"]  # no lock file left
    with OutputSet(tmp_path, "x", paths, overwrite=True) as files:
        for path in paths:
            files.write(path, text_writer("new"))
    assert paths[0].read_text() == "new"


def test_an_output_set_that_fails_midway_removes_what_it_wrote(tmp_path):
    paths = [tmp_path / "x.0.png", tmp_path / "x.grid.png", tmp_path / "x.json"]
    with pytest.raises(KeyboardInterrupt), OutputSet(tmp_path / "new", "x", paths) as files:
        files.write(paths[0], text_writer("image"))
        raise KeyboardInterrupt  # Ctrl-C between files
    assert not tmp_path.joinpath("new").exists() and not paths[0].exists()  # all or nothing; made folders too


def test_an_interrupt_just_after_the_sidecar_lands_removes_the_whole_set(tmp_path, monkeypatch):
    # Ctrl-C between the sidecar's rename and the end of write(): the sidecar must not stay behind vouching for
    # images that the clean-up removes (a batch rerun would then redo a job it reported finished).
    import p2p_real.files.output_sets as output_sets

    def write_then_interrupt(path, write, **kwargs):
        atomic_write(path, write, **kwargs)
        if Path(path).suffix == ".json":
            raise KeyboardInterrupt

    monkeypatch.setattr(output_sets, "atomic_write", write_then_interrupt)
    paths = [tmp_path / "x.0.png", tmp_path / "x.json"]
    with pytest.raises(KeyboardInterrupt), OutputSet(tmp_path, "x", paths) as files:
        for path in paths:
            files.write(path, text_writer("new"))
    assert list(tmp_path.iterdir()) == []  # all or nothing, the sidecar included


def test_a_rewritten_set_loses_its_old_sidecar_first_and_an_interrupted_rewrite_is_completed(tmp_path):
    paths = [tmp_path / "x.0.png", tmp_path / "x.json"]
    with OutputSet(tmp_path, "x", paths) as files:
        for path in paths:
            files.write(path, text_writer("old"))
    with pytest.raises(OSError), OutputSet(tmp_path, "x", paths, overwrite=True) as files:
        assert not paths[1].exists()  # the old sidecar never vouches for a mixed set
        files.write(paths[0], text_writer("new"))
        raise OSError(errno.ENOSPC, "No space left on device")
    assert paths[0].read_text() == "new" and not paths[1].exists()  # unfinished, and it shows
    assert json.loads(lock_path(tmp_path, "x").read_text())["files"] == ["x.0.png", "x.json"]
    with OutputSet(tmp_path, "x", paths) as files:  # the same request again, without overwrite: completed
        for path in paths:
            files.write(path, text_writer("again"))
    assert [p.read_text() for p in paths] == ["again", "again"] and not lock_path(tmp_path, "x").exists()


@pytest.mark.slow
def test_a_set_a_killed_run_left_half_written_is_completed_by_the_next_run(tmp_path):
    killed = run_python(
        f"""
        import os, signal
        from pathlib import Path
        from p2p_real.files.output_sets import OutputSet
        folder = Path({str(tmp_path)!r})
        paths = [folder / "x.0.png", folder / "x.grid.png", folder / "x.json"]
        with OutputSet(folder, "x", paths) as files:
            files.write(paths[0], lambda tmp: tmp.write_text("image"))
            def die(tmp):
                tmp.write_text("half a grid")
                os.kill(os.getpid(), signal.SIGKILL)
            files.write(paths[1], die)
        """,
        tmp_path,
    )
    assert killed.returncode == -signal.SIGKILL
    assert (tmp_path / "x.0.png").exists() and temporaries(tmp_path)  # what a kill leaves
    paths = [tmp_path / "x.0.png", tmp_path / "x.grid.png", tmp_path / "x.json"]
    start = time.monotonic()
    with OutputSet(tmp_path, "x", paths) as files:  # no overwrite needed: the files are the unfinished set's
        for path in paths:
            files.write(path, text_writer("done"))
    assert time.monotonic() - start < 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.0.png", "x.grid.png", "x.json"]  # no tmp, no lock
