"""The held-out name -> definition retrieval (``retrieval.py``) as a benchmark of the suite.

The held-out concepts come from the training data's split (``PairDataModule(...).heldout``), so
the benchmark needs the ``data`` config the model was trained with; scores are only comparable
between models evaluated on the same data config and split seed.
"""

from __future__ import annotations

import torch

from biolord.evaluation.retrieval import rank_of_gold, retrieval_metrics


class HeldOutBenchmark:
    kind = "heldout"
    primary = "acc@1"

    def __init__(self, name: str, heldout=None, data=None, tokenizer=None, max_length: int = 128, **_ignored):
        """``heldout``: an object with ``.names`` / ``.definitions``; else built from ``data`` (a data config)."""
        self.name = name
        if heldout is None:
            if data is None:
                raise ValueError(
                    f"benchmark {name} (kind heldout) needs a data config (the training data's held-out split); "
                    "add data=<group> to the command line, e.g. data=embedded"
                )
            from biolord.data.datamodule import PairDataModule

            module = PairDataModule(data, tokenizer, max_length)
            module.setup()
            heldout = module.heldout
        self.names, self.definitions = list(heldout.names), list(heldout.definitions)
        if not self.names:
            raise ValueError("held-out retrieval needs at least one concept with a definition; raise data.val_fraction")
        self.files = {}

    def run(self, embedder) -> dict:
        queries = embedder.embed(self.names)  # (N, d)
        corpus = embedder.embed(self.definitions)  # (N, d)
        metrics = retrieval_metrics(rank_of_gold(queries, corpus, torch.arange(len(self.names))))
        return {"n": metrics.pop("n"), "metrics": metrics, "skipped": {}}
