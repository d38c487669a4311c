"""biolord.atomic: files and folders get the umask's mode, and a failed write leaves nothing behind."""

import os
import stat

import pytest
import torch

from biolord.atomic import atomic_file, atomic_folder, current_umask
from biolord.checkpoint import AtomicCheckpointIO
from biolord.embedding_store import EmbeddingStore
from biolord.export import export_sentence_transformers


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_current_umask_reads_without_changing(umask):
    assert current_umask() == umask
    assert current_umask() == umask


def test_atomic_file_and_folder_modes(umask, tmp_path):
    with atomic_file(tmp_path / "a.bin") as tmp:
        tmp.write_bytes(b"x")
    with atomic_folder(tmp_path / "d") as folder:
        (folder / "f.txt").write_text("y")
    assert mode(tmp_path / "a.bin") == 0o666 & ~umask
    assert mode(tmp_path / "d") == 0o777 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "d"]


def test_failed_writes_leave_target_untouched(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_file(tmp_path / "a.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    with pytest.raises(RuntimeError):
        with atomic_folder(tmp_path / "d") as folder:
            (folder / "f.txt").write_text("half")
            raise RuntimeError("killed")
    assert (tmp_path / "a.bin").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_folder_without_replace_keeps_a_complete_one_and_refuses_others(tmp_path):
    target = tmp_path / "m"
    target.mkdir()
    (target / "done").write_text("first")
    with atomic_folder(target, replace=False, is_complete=lambda p: (p / "done").exists()) as folder:
        (folder / "done").write_text("second")
    assert (target / "done").read_text() == "first"  # a concurrent process's complete folder wins
    with pytest.raises(FileExistsError, match=str(target)):
        with atomic_folder(target, replace=False) as folder:
            (folder / "done").write_text("third")


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_exported_model_checkpoint_and_cache_readable_by_group(tiny_encoder, tmp_path, mask):
    old = os.umask(mask)
    try:
        folder = export_sentence_transformers(tiny_encoder, tmp_path / "model")
        AtomicCheckpointIO().save_checkpoint({"x": torch.zeros(2)}, tmp_path / "ckpt" / "last.ckpt")
        cached = EmbeddingStore(tmp_path / "cache", "f").add(["a"], torch.zeros(1, 2))
    finally:
        os.umask(old)
    files, folders = 0o666 & ~mask, 0o777 & ~mask
    assert mode(folder) == folders
    assert mode(folder / "1_Pooling") == folders
    for name in ("model.safetensors", "config.json", "modules.json", "README.md", "tokenizer_config.json"):
        assert mode(folder / name) == files, name
    assert mode(tmp_path / "ckpt" / "last.ckpt") == files
    assert mode(cached) == files
