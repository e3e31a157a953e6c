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
