from __future__ import annotations

import pytest
import torch
from PIL import Image

from ganaug._util.files import atomic_path, save_image_grid


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"], "the temporary file is cleaned up"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_atomic_files_get_the_permissions_open_would_give(tmp_path):
    """mkstemp and safetensors both create 0600 files; the final file follows the umask like open()."""
    import os

    from ganaug._util.checkpoint_file import write_checkpoint

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    expected = plain.stat().st_mode & 0o777
    with atomic_path(tmp_path / "text.txt") as tmp:
        tmp.write_text("x")
    checkpoint = write_checkpoint(tmp_path / "model.safetensors", {"a": torch.zeros(2)}, {}, "ganaug.test/1")
    for path in (tmp_path / "text.txt", checkpoint):
        assert path.stat().st_mode & 0o777 == expected, (path.name, oct(path.stat().st_mode))
    assert os.access(checkpoint, os.R_OK)


def test_save_image_grid(tmp_path):
    images = torch.randint(0, 256, (6, 1, 5, 7), dtype=torch.uint8)
    path = save_image_grid(images, tmp_path / "grid.png", nrow=3, padding=1, scale=2)
    with Image.open(path) as grid:
        assert grid.mode == "L"
        assert grid.size == (3 * (14 + 1) + 1, 2 * (10 + 1) + 1)
    with pytest.raises(ValueError, match="uint8"):
        save_image_grid(images.float(), tmp_path / "bad.png")


def test_atomic_path_never_touches_the_process_umask(tmp_path, monkeypatch):
    """Changing the umask, even briefly, races with every other thread that creates files."""
    import os

    def forbidden(mask):
        raise AssertionError("atomic_path changed the process umask")

    monkeypatch.setattr(os, "umask", forbidden)
    with atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("x")
    assert (tmp_path / "a.txt").read_text() == "x"


def test_stale_temporaries_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    import os
    import subprocess
    import sys

    from ganaug._util.files import remove_stale_temporaries

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    dead_pid = int(dead.stdout)
    (tmp_path / "sub").mkdir()
    stale = [tmp_path / f".checkpoint.safetensors.{dead_pid}.0a1b2c3d.tmp",
             tmp_path / "sub" / f".step_0000002.png.{dead_pid}.ffee0011.tmp"]
    live = tmp_path / f".config.json.{os.getpid()}.12345678.tmp"
    others = [tmp_path / "notes.tmp", tmp_path / ".hidden.tmp", tmp_path / "checkpoint.safetensors"]
    for path in [*stale, live, *others]:
        path.write_text("x")
    assert sorted(remove_stale_temporaries(tmp_path)) == [stale[0]]  # not recursive: the folder only
    assert sorted(remove_stale_temporaries(tmp_path, recursive=True)) == [stale[1]]
    assert all(p.exists() for p in [live, *others])
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_a_killed_writer_leaves_a_temporary_that_names_its_process(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from ganaug._util.files import remove_stale_temporaries

    script = ("import sys, time; from ganaug._util.files import atomic_path\n"
              f"with atomic_path({str(tmp_path / 'out.bin')!r}) as tmp:\n"
              "    tmp.write_bytes(b'half'); print('writing', flush=True); time.sleep(60)\n")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    (left,) = tmp_path.iterdir()
    assert f".{process.pid}." in left.name and not (tmp_path / "out.bin").exists()
    assert remove_stale_temporaries(tmp_path) == [left]
