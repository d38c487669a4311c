"""Batches of pairs -> tokenised tensors; each side padded on its own (names are short, texts long)."""

from __future__ import annotations

import torch

from biolord.data.split import concept_key


class PairCollator:
    """``[{concept_id, name, text, ...}] -> {anchor, positive, concept_id, names, texts}``.

    anchor / positive are tokeniser outputs (input_ids, attention_mask, ...) of shape (B, T_side);
    concept_id is (B,) int64 (a stable hash, see ``biolord.data.split.concept_key``) for masking
    same-concept false negatives in the loss.
    """

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = int(max_length)

    def _tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return dict(
            self.tokenizer(texts, padding=True, truncation="longest_first", max_length=self.max_length, return_tensors="pt")
        )

    def __call__(self, rows: list[dict]) -> dict:
        names, texts = [r["name"] for r in rows], [r["text"] for r in rows]
        return {
            "names": names,  # the strings too: distillation phases look their teacher vectors up
            "texts": texts,
            "anchor": self._tokenize(names),  # (B, T_name)
            "positive": self._tokenize(texts),  # (B, T_text)
            "concept_id": torch.tensor(
                [r["concept_key"] if "concept_key" in r else concept_key(r["concept_id"]) for r in rows], dtype=torch.long
            ),  # (B,)
        }
