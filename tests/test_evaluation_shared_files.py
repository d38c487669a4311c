"""The real public benchmark files parse with the presets and have the pinned hashes.

They are read from ``BIOLORD_EVALS_DIR`` (.ci/run sets it to the CI machine's copy); skipped without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from biolord.config_dir import config_dir
from biolord.evaluation.benchmarks import build, load_spec
from biolord.evaluation.download import check, file_sources

EVALS = Path(os.environ.get("BIOLORD_EVALS_DIR", "/nonexistent")).expanduser()
pytestmark = pytest.mark.skipif(
    not (EVALS / "BIOSSES.tsv").exists(),
    reason="set BIOLORD_EVALS_DIR to a folder of the public benchmark files (python -m biolord.fetch)",
)


@pytest.mark.parametrize("name, rows", [("biosses", 100), ("mayosrs", 101), ("umnsrs_sim", 566), ("stsb", 1379)])
def test_pair_presets_read_every_row(name, rows):
    bench = build(name, evals_dir=EVALS)
    assert len(bench.data.scores) == rows and bench.data.skipped == {}


def test_ncbi_disease_and_medic():
    bench = build("ncbi_disease", evals_dir=EVALS)
    assert bench.n_read == 960
    assert bench.dictionary.n_concepts == 11915
    assert len(bench.mentions) + sum(bench.skipped.values()) == 960
    assert bench.n_composite > 0


def test_public_files_have_the_pinned_sha256():
    """The hashes in conf/benchmark/*.yaml are those of the public files: fetch and check agree with them."""
    sources = [s for p in sorted((config_dir() / "benchmark").glob("*.yaml")) for s in file_sources(load_spec(p.stem))]
    statuses = check(sources, EVALS)
    assert len(statuses) == 6 and [s.status for s in statuses] == ["ok"] * 6, [(s.target, s.detail) for s in statuses]
