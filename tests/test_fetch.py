"""``python -m biolord.fetch``: pinned files are fetched (here from file:// URLs) and checked offline."""

import hashlib
import os
import stat
import sys

import pytest
from hydra import compose, initialize_config_dir

from biolord.config_dir import config_dir
from biolord.evaluation.benchmarks import build
from biolord.evaluation.download import check, fetch, file_sources
from biolord.evaluation.files import BenchmarkFileError, default_evals_dir, resolve_file
from biolord.fetch import main, run

ROWS = "a\tb\ts\nwilson disease\thepatolenticular degeneration\t4\nseizure\tfracture\t1\nfever\tpyrexia\t5\n"


@pytest.fixture
def mirror(tmp_path):
    """A benchmark yaml in tmp/benchmarks whose file comes from tmp/mirror/toy.tsv by a file:// URL."""
    src = tmp_path / "mirror" / "toy.tsv"
    src.parent.mkdir()
    src.write_text(ROWS)
    digest = hashlib.sha256(ROWS.encode()).hexdigest()
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "toy.yaml").write_text(
        "kind: pairs\npath: toy.tsv\ntext1: a\ntext2: b\nscore: s\n"
        f"source:\n  url: {src.as_uri()}\n  sha256: {digest}\n  licence: CC0\n"
    )
    return src, digest


def _cfg(tmp_path, *overrides):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("fetch", overrides=[f"benchmark_dirs=[{tmp_path / 'benchmarks'}]", "benchmarks=[toy]",
                                           f"evals_dir={tmp_path / 'evals'}", "progressbar=false", *overrides])


def test_fetch_places_the_file_checks_it_and_leaves_a_good_copy_alone(mirror, tmp_path):
    src, digest = mirror
    old = os.umask(0o002)
    try:
        [first] = run(_cfg(tmp_path))
    finally:
        os.umask(old)
    target = tmp_path / "evals" / "toy.tsv"
    assert (first.status, first.target) == ("fetched", target)
    assert target.read_text() == ROWS
    assert stat.S_IMODE(target.stat().st_mode) == 0o664  # the umask's mode, not pooch's private temporary file
    src.unlink()  # a second fetch must not need the source: the hash of the copy is right
    [again] = run(_cfg(tmp_path))
    assert again.status == "ok"
    [checked] = run(_cfg(tmp_path, "check=true"))
    assert checked.status == "ok"
    # and the benchmark reads the fetched file; its `source` never reaches the reader
    bench = build("toy", evals_dir=tmp_path / "evals", search_dirs=[tmp_path / "benchmarks"])
    assert len(bench.data.scores) == 3 and bench.files == {str(target.resolve()): digest}


def test_check_catches_a_corrupted_or_missing_file_and_fetch_repairs_it(mirror, tmp_path, capsys, monkeypatch):
    src, digest = mirror
    [sources] = [file_sources(spec) for spec in [{"name": "toy", "path": "toy.tsv",
                                                    "source": {"url": src.as_uri(), "sha256": digest}}]]
    evals = tmp_path / "evals"
    [missing] = check(sources, evals)
    assert missing.status == "missing" and "python -m biolord.fetch" in missing.detail and src.as_uri() in missing.detail
    evals.mkdir()
    (evals / "toy.tsv").write_text(ROWS.replace("4\n", "3\n"))  # one score changed by hand
    [corrupt] = check(sources, evals)
    assert corrupt.status == "corrupt" and corrupt.failed
    assert digest in corrupt.detail and hashlib.sha256(ROWS.replace("4\n", "3\n").encode()).hexdigest() in corrupt.detail
    monkeypatch.setattr(sys, "argv", ["biolord.fetch", f"benchmark_dirs=[{tmp_path / 'benchmarks'}]", "benchmarks=[toy]",
                                      f"evals_dir={evals}", "check=true"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1
    out = capsys.readouterr().out
    assert "corrupt  toy  path=toy.tsv  sha256 " in out and "0 of 1 files ok, 1 to fix" in out
    [repaired] = fetch(sources, evals)
    assert repaired.status == "fetched" and (evals / "toy.tsv").read_text() == ROWS


def test_a_source_that_gives_other_bytes_writes_nothing(mirror, tmp_path):
    src, digest = mirror
    src.write_text(ROWS + "extra\trow\t2\n")
    [status] = run(_cfg(tmp_path))
    assert status.status == "corrupt" and "does not give the file that source.sha256 pins" in status.detail
    assert not (tmp_path / "evals" / "toy.tsv").exists()


def test_file_without_url_is_reported_as_manual(tmp_path):
    spec = {"name": "by_hand", "kind": "pairs", "path": "x.tsv", "source": {"url": None, "how": "convert the .rar", "sha256": "0" * 64}}
    [status] = fetch(file_sources(spec), tmp_path)
    assert status.status == "manual" and "convert the .rar" in status.detail


def test_source_without_hash_is_refused(tmp_path):
    with pytest.raises(BenchmarkFileError, match="mentions.source=.*needs at least sha256"):
        file_sources({"name": "l", "mentions": {"path": "m.txt", "source": {"url": "https://x/m.txt"}}})


def test_default_evals_dir_is_in_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("BIOLORD_EVALS_DIR", raising=False)
    monkeypatch.setenv("BIOLORD_CACHE_DIR", str(tmp_path / "cache"))
    assert default_evals_dir() == tmp_path / "cache" / "evals"
    with pytest.raises(BenchmarkFileError, match=f"python -m biolord.fetch evals_dir={tmp_path / 'cache' / 'evals'}"):
        resolve_file("BIOSSES.tsv")
    monkeypatch.setenv("BIOLORD_EVALS_DIR", str(tmp_path / "mine"))
    assert default_evals_dir() == tmp_path / "mine"


def _file_keys(spec: dict, prefix: str = "") -> set[str]:
    keys = {f"{prefix}path"} if "path" in spec else set()
    for key, value in spec.items():
        if isinstance(value, dict) and key != "source":
            keys |= _file_keys(value, f"{prefix}{key}.")
    return keys


@pytest.mark.parametrize("name", sorted(p.stem for p in (config_dir() / "benchmark").glob("*.yaml")))
def test_every_file_of_every_preset_has_a_pinned_source(name):
    """A preset that reads a file the fetch command cannot get or check is a user left to guess."""
    from biolord.evaluation.benchmarks import load_spec

    spec = load_spec(name)
    sources = file_sources(spec)
    assert {s.key for s in sources} == _file_keys(spec)
    for s in sources:
        assert len(s.sha256) == 64 and int(s.sha256, 16) >= 0
        assert (s.url is None and s.how) or s.url.startswith("https://")
