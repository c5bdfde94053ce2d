"""What `p2p-real` does with its output folder when things go wrong (docs/reliability.md, "Atomicity and
overwriting"): two runs on one --out, a kill or Ctrl-C mid-way, a full disk, a folder that cannot be written,
and which paths of this machine its files record. Races and kills use real processes."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

import cli
from tests.ci import unavailable
from tests.helpers import DOG, SCRIPT, TIMEOUT, cli_args, cli_env, draw_mask, draw_photo, png_parameters, quick

ROOT = Path(__file__).resolve().parents[1]
EDIT_FILES = ["photo.0.png", "photo.1.png", "photo.grid.png", "photo.inv.safetensors", "photo.json"]


@pytest.fixture
def ws(tmp_path, tiny_model_dir, monkeypatch):
    """A photo in an empty working folder (the current folder), and the edit command that writes into out/."""
    draw_photo(tmp_path / "photo.png")
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path, cli_args("edit", "photo.png", *quick(tiny_model_dir), "--out", "out", targets=[DOG])


def names(folder: Path) -> list[str]:
    """Every entry of a folder, hidden ones (temporary and lock files) included."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.slow
def test_two_runs_writing_the_same_outputs_do_not_both_succeed(ws):
    root, argv = ws
    runs = [
        subprocess.Popen(
            [*SCRIPT, *argv[:5], target, *argv[6:], "-q"],
            cwd=root,
            env=cli_env(root / "home"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for target in ("a dog on a wall", "a cow on a wall")
    ]
    results = [(run.wait(TIMEOUT), run.stderr.read()) for run in runs]
    assert sorted(code for code, _ in results) == [0, 1], results
    loser = next(err for code, err in results if code == 1).strip()
    assert len(loser.splitlines()) == 1 and loser.startswith("p2p-real: error:"), loser
    assert "is writing photo.* in out" in loser or "exists" in loser, loser
    sidecar = json.loads((root / "out/photo.json").read_text())
    winner = sidecar["parameters"]["targets"]
    assert png_parameters(root / "out/photo.1.png")["targets"] == winner  # one run's set, not a mixture
    with Image.open(root / "out/photo.1.png") as image:
        assert [image.text["prompt"]] == winner
    assert names(root / "out") == EDIT_FILES


def test_ctrl_c_during_the_edit_keeps_the_finished_inversion(ws, capsys, monkeypatch):
    import p2p_real

    root, argv = ws

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(p2p_real.Editor, "edit", interrupted)
        assert cli.main(argv) == 130
    assert "interrupted" in capsys.readouterr().err
    assert names(root / "out") == ["photo.inv.safetensors"]  # no lock, no half set: only the finished inversion
    assert cli.main(argv) == 0
    assert "reused out/photo.inv.safetensors" in capsys.readouterr().out
    assert names(root / "out") == EDIT_FILES


def test_a_full_disk_names_the_file_removes_the_half_set_and_a_rerun_completes(ws, capsys, monkeypatch):
    root, argv = ws
    save = Image.Image.save

    def disk_full_at_the_grid(image, fp, *args, **kwargs):
        if "grid.png" in str(fp):  # the grid's temporary file: the disk fills up while it is written
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(image, fp, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(Image.Image, "save", disk_full_at_the_grid)
        assert cli.main([*argv, "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "p2p-real: error: out/photo.grid.png: no space left on device", err
    assert names(root / "out") == ["photo.inv.safetensors"]  # the images written before it are removed again
    assert cli.main([*argv, "-q"]) == 0  # the same command completes it: no --overwrite needed
    assert names(root / "out") == EDIT_FILES


@pytest.mark.slow
def test_a_run_killed_while_writing_leaves_what_the_same_command_completes(ws, capsys):
    root, argv = ws
    code = f"""
        import os, signal, sys
        from PIL import Image
        import cli
        save = Image.Image.save
        def killed_at_the_grid(image, fp, *args, **kwargs):
            save(image, fp, *args, **kwargs)
            if "grid.png" in str(fp):  # killed with the grid half written (not yet in place)
                os.kill(os.getpid(), signal.SIGKILL)
        Image.Image.save = killed_at_the_grid
        sys.exit(cli.main({[*argv, "-q"]!r}))
        """
    env = {**cli_env(root / "home"), "PYTHONPATH": str(ROOT)}
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = names(root / "out")
    assert "photo.0.png" in left and "photo.json" not in left and any(n.endswith(".tmp") for n in left), left
    assert cli.main(argv) == 0, capsys.readouterr().err  # without --overwrite: the half set was this command's
    assert names(root / "out") == EDIT_FILES  # temporary and lock files gone
    assert json.loads((root / "out/photo.json").read_text())["outputs"]["grid"] == "photo.grid.png"


@contextmanager
def unwritable(folder: Path) -> Iterator[None]:
    """Make a folder impossible to write in: read-only permissions, or (for root, whom permissions do not stop)
    the immutable attribute."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    try:
        done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    except FileNotFoundError:
        unavailable("running as root without chattr (e2fsprogs): cannot make a folder unwritable")
    if done.returncode != 0:
        unavailable(f"running as root and chattr +i failed ({done.stderr.strip()}): cannot make a folder unwritable")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.parametrize("out", ["locked", "locked/new/out"])
def test_an_output_folder_that_cannot_be_written_fails_before_any_work(ws, capsys, monkeypatch, out):
    from p2p_real.commands import session

    root, argv = ws
    (root / "locked").mkdir()

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded for a folder that cannot be written")

    monkeypatch.setattr(session, "open_session", no_model)
    with unwritable(root / "locked"):
        assert cli.main([*argv[:-1], out]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("p2p-real: error: cannot write into") and "choose another --out" in err, err
    assert names(root / "locked") == []


def test_results_record_no_folder_of_this_machine_and_still_reproduce(ws, tiny_model_dir, capsys):
    root, argv = ws
    (root / "photos").mkdir()
    photo, mask = draw_photo(root / "photos/cat.png"), draw_mask(root / "photos/mask.png")
    run = cli_args("edit", photo, "--mask", mask, *quick(tiny_model_dir), "--out", root / "out", targets=[DOG])
    assert cli.main(run) == 0  # every path absolute, as a script would give them
    texts = [(root / "out/cat.json").read_text()]
    for png in sorted((root / "out").glob("*.png")):
        with Image.open(png) as image:
            texts += list(image.text.values())
    for text in texts:
        assert str(root) not in text and str(tiny_model_dir) not in text, text[:300]
    sidecar = json.loads(texts[0])
    assert sidecar["argv"][1] == "photos/cat.png" and "photos/mask.png" in sidecar["argv"]  # inside this folder
    assert sidecar["argv"][sidecar["argv"].index("--model") + 1] == tiny_model_dir.name  # outside: its name
    assert sidecar["parameters"]["model"] == tiny_model_dir.name
    # the reproduce command works where the photo is, given where the model is
    assert cli.main([*sidecar["argv"], "--model", str(tiny_model_dir), "--out", "again", "-q"]) == 0
    for name in ("cat.0.png", "cat.1.png", "cat.1.mask.png"):
        assert (root / "out" / name).read_bytes() == (root / "again" / name).read_bytes()
