"""The real public benchmark files (``../shared/evals``) parse with the presets; skipped without them."""

from __future__ import annotations

import pytest

from biolord.evaluation.benchmarks import build
from biolord.evaluation.files import default_evals_dir

EVALS = default_evals_dir()
pytestmark = pytest.mark.skipif(not (EVALS / "BIOSSES.tsv").exists(), reason=f"no benchmark files in {EVALS}")


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
