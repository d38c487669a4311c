"""How close a multilingual student is to its teacher, per language, on held-out concepts.

Two figures per language, as in Reimers & Gurevych 2020 (section 4):

- MSE (x100, sentence-transformers' MSEEvaluator convention) between the student's vector of the
  translated name and the teacher's vector of the English name: what distillation minimises.
- cross-lingual retrieval: each translated name (student) is a query, the distinct English names
  of the held-out concepts (student) are the corpus; acc@1 and MRR (``retrieval.rank_of_gold``).
  This is what a user of the student alone gets.
- transfer (``acc@1_teacher``): the same queries against the *teacher's* English vectors: does the
  translated name land where the teacher puts the English one (the point of distillation; near 0
  for a student still in its own space, whatever its own cross-lingual score).

The ``en`` row scores the student's English vectors against the teacher's (MSE, and acc@1 of
student(en) among teacher(en) vectors). ``teacher_reference`` gives, once per run, the English
teacher's own figures: en -> en retrieval on the same corpus (the ceiling a student that matched
the teacher exactly would reach) and xx -> en (the English-only teacher reading the translation).
"""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F

from biolord.evaluation.retrieval import rank_of_gold, retrieval_metrics


def _group(rows) -> tuple[list[str], dict[str, list]]:
    english = list(dict.fromkeys(r.en for r in rows))
    by_lang: dict[str, list] = defaultdict(list)
    for r in rows:
        by_lang[r.lang].append(r)
    return english, dict(sorted(by_lang.items()))


def _scores(queries, corpus, gold) -> dict:
    out = retrieval_metrics(rank_of_gold(F.normalize(queries, dim=1), F.normalize(corpus, dim=1), gold))
    return {"acc@1": out["acc@1"], "mrr": out["mrr"], "n": out["n"]}


def distillation_metrics(student, rows, teacher_lookup, batch_size: int = 64) -> dict[str, dict]:
    """{lang: {"acc@1", "mrr", "mse", "n"}} for every language of ``rows``, plus ``en``.

    teacher_lookup: texts -> (N, d) teacher vectors (``TeacherCache.lookup``).
    """
    english, by_lang = _group(rows)
    index = {en: i for i, en in enumerate(english)}
    teacher_en = teacher_lookup(english)  # (C, d)
    student_en = student.encode(english, batch_size=batch_size)  # (C, d)
    to_teacher = _scores(student_en, teacher_en, torch.arange(len(english)))
    out = {"en": {**to_teacher, "acc@1_teacher": to_teacher["acc@1"],
                  "mse": F.mse_loss(student_en, teacher_en).item() * 100}}
    for lang, lang_rows in by_lang.items():
        gold = torch.tensor([index[r.en] for r in lang_rows])  # (Q,)
        student_xx = student.encode([r.xx for r in lang_rows], batch_size=batch_size)  # (Q, d)
        out[lang] = {**_scores(student_xx, student_en, gold),
                     "acc@1_teacher": _scores(student_xx, teacher_en, gold)["acc@1"],
                     "mse": F.mse_loss(student_xx, teacher_en[gold]).item() * 100}
    return out


def format_metrics(metrics: dict[str, dict]) -> str:
    """One log line: per language acc@1, transfer acc@1 (-> teacher) and MSE x100."""
    return ", ".join(f"{k} acc@1 {v['acc@1']:.1f} ->teacher {v['acc@1_teacher']:.1f} mse {v['mse']:.3f}"
                     for k, v in metrics.items())


def teacher_reference(rows, teacher_lookup) -> dict[str, dict]:
    """{lang: {"en->en acc@1", "xx->en acc@1"}}: the English teacher's ceiling and its own cross-lingual score."""
    english, by_lang = _group(rows)
    index = {en: i for i, en in enumerate(english)}
    teacher_en = teacher_lookup(english)  # (C, d)
    out = {}
    for lang, lang_rows in by_lang.items():
        gold = torch.tensor([index[r.en] for r in lang_rows])  # (Q,)
        out[lang] = {
            "en->en acc@1": _scores(teacher_en[gold], teacher_en, gold)["acc@1"],
            "xx->en acc@1": _scores(teacher_lookup([r.xx for r in lang_rows]), teacher_en, gold)["acc@1"],
        }
    out["en"] = {"en->en acc@1": _scores(teacher_en, teacher_en, torch.arange(len(english)))["acc@1"], "xx->en acc@1": float("nan")}
    return out


def student_vs_teacher_table(history: list[dict], reference: dict[str, dict]) -> str:
    """Markdown: per language, the student's acc@1 and MSE at the first and last evaluation, and the teacher's.

    (``biolord.train.before_after_table`` is the contrastive run's held-out retrieval before / after.)
    """
    if not history:
        return ""
    first, last = history[0]["metrics"], history[-1]["metrics"]
    s0, s1 = (h.get("label") or f"step {h['step']}" for h in (history[0], history[-1]))
    lines = [
        "acc@1: the student's translated name -> the student's English names; → teacher: -> the teacher's "
        "English vectors (the en row: student(en) -> teacher(en)); MSE×100 to teacher(en).\n",
        f"| lang | n | acc@1 {s0} | acc@1 {s1} | → teacher {s0} | → teacher {s1} "
        f"| MSE×100 {s0} | MSE×100 {s1} | teacher en→en acc@1 (ceiling) | teacher xx→en acc@1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    def cell(values: dict, key: str, digits: int = 1) -> str:
        """A figure, or "–" where there is none (the en row has no xx->en; a language missing at the end)."""
        value = values.get(key)
        return "–" if value is None or value != value else f"{value:.{digits}f}"

    for lang in sorted(first, key=lambda x: (x != "en", x)):
        a, b, t = first[lang], last.get(lang, {}), reference.get(lang, {})
        lines.append(
            f"| {lang} | {a['n']} | {cell(a, 'acc@1')} | {cell(b, 'acc@1')} | {cell(a, 'acc@1_teacher')} "
            f"| {cell(b, 'acc@1_teacher')} | {cell(a, 'mse', 3)} | {cell(b, 'mse', 3)} "
            f"| {cell(t, 'en->en acc@1')} | {cell(t, 'xx->en acc@1')} |"
        )
    return "\n".join(lines)
