"""Rows whose name or text is longer than the model reads: the collator truncates them; count them.

``PairCollator`` cuts each side at ``max_seq_length`` tokens (special tokens included), so the end of
a long definition is never seen. The count per source and side goes to ``data_stats.json``.

Only rows that *can* be too long are tokenised: no tokeniser used here gives more tokens than the
text has UTF-8 bytes, plus one (a SentencePiece word-start piece) and its special tokens, so a
side of at most ``max_length - specials - 1`` bytes is never truncated (Unicode normalisation that
lengthens a text, as NFKC does for a few ligatures, is the exception). The count is cached in the
table's folder per tokenizer and length: the built table never changes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

BATCH = 1000


def count_truncated(table, rows: np.ndarray, tokenizer, max_length: int) -> dict:
    """``{"max_tokens": n, "name": {source: rows}, "text": {source: rows}}`` over the table ``rows``."""
    key = hashlib.sha256(
        json.dumps([type(tokenizer).__name__, str(tokenizer.name_or_path), len(tokenizer), int(max_length)]).encode()
    ).hexdigest()[:16]
    cache = Path(table.folder) / f"truncated-{key}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    import pyarrow as pa
    import pyarrow.compute as pc

    specials = len(tokenizer("", add_special_tokens=True)["input_ids"])
    source_ids = table.column("source_id")[rows]
    out: dict = {"max_tokens": int(max_length)}
    for side in ("name", "text"):
        column = table.dataset.data.table.column(side)  # memory-mapped: only candidates are copied
        n_bytes = pc.binary_length(column).to_numpy()[rows]  # (len(rows),)
        candidates = np.flatnonzero(n_bytes + 1 + specials > max_length)  # positions in rows
        too_long = np.zeros(len(rows), dtype=bool)
        for start in range(0, len(candidates), BATCH):
            part = candidates[start : start + BATCH]
            texts = column.take(pa.array(rows[part], type=pa.int64())).to_pylist()
            ids = tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
            too_long[part] = np.array([len(x) for x in ids]) > max_length
        counts = np.bincount(source_ids[too_long], minlength=len(table.sources))
        out[side] = {source: int(counts[i]) for i, source in enumerate(table.sources)}
    tmp = cache.with_name(f".{cache.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, cache)
    return out
