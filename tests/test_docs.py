"""The docs cannot drift: included tables equal their rendered files, the module map equals the code,
links resolve, and the README's test command is the one CI runs. Cheap: no model, no data."""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_docs_tables():
    spec = importlib.util.spec_from_file_location("docs_tables", ROOT / "bench" / "docs_tables.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


dt = _load_docs_tables()


def _pages() -> list[Path]:
    return dt.pages(ROOT)


def test_included_tables_match_their_files():
    assert dt.problems(ROOT) == []
    included = {b.name for p in _pages() for b in dt.blocks(p, ROOT)}
    # the measured tables moved out of the README, and the placeholders the lead fills
    assert {"default_run", "cpu_chain", "distill_languages",
            "quality_single", "quality_pipeline", "throughput", "bf16_vs_fp32"} <= included


def _copy_docs(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    return tmp_path


def test_a_table_edited_by_hand_fails_the_check(tmp_path, capsys):
    root = _copy_docs(tmp_path)
    readme = root / "README.md"
    original = readme.read_text()
    block = next(b for b in dt.blocks(readme, root) if b.name == "default_run")
    row = block.content.splitlines()[2]  # the first data row
    digit = re.search(r"\d", row)
    edited_row = row[:digit.start()] + str((int(digit.group()) + 1) % 10) + row[digit.end():]  # a figure retyped
    assert edited_row != row and original.count(row) == 1
    readme.write_text(original.replace(row, edited_row))

    found = dt.problems(root)
    assert len(found) == 1
    assert found[0].startswith(f"README.md:{block.open_line + 1}: table 'default_run' differs from "
                               "docs/results/default_run.md")
    assert dt.main(["--check", "--root", str(root)]) == 1
    assert "differs" in capsys.readouterr().err

    assert dt.sync(root) == [readme]  # --sync puts the rendered table back
    assert readme.read_text() == original
    assert dt.problems(root) == []


def test_an_edited_result_file_without_sync_fails_the_check(tmp_path):
    root = _copy_docs(tmp_path)
    result = root / "docs" / "results" / "cpu_chain.md"
    result.write_text(result.read_text().replace("87.60", "88.60"))
    found = dt.problems(root)
    assert found and all("table 'cpu_chain' differs" in p for p in found)
    assert any(p.startswith("docs/results.md:") for p in found)


LOG = """load average at start: 0.10 0.20 0.30
(b) biolord single run: 301 s of training -> the budget

| model | BIOSSES | MayoSRS |
|---|---:|---:|
| base | 81.25 | 45.55 |
| biolord | 82.00 | 50.10 |

wins: 2/2 benchmarks vs sentence-transformers at equal wall-clock (budget 301 s)
"""


def test_render_takes_the_table_from_a_log_and_refreshes_every_inclusion(tmp_path, capsys):
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "quality_single.md").write_text("(to be measured)\n")
    page = "# t\n\nbefore\n\n<!-- table: quality_single -->\n(to be measured)\n<!-- /table -->\n\nafter\n"
    (tmp_path / "README.md").write_text(page)
    (tmp_path / "docs" / "results.md").write_text(page)
    log = tmp_path / "run.log"
    log.write_text(LOG)

    assert dt.main(["quality_single", str(log), "--note", "python bench/quality.py --single",
                    "--root", str(tmp_path)]) == 0
    rendered = (tmp_path / "docs" / "results" / "quality_single.md").read_text()
    table = "| model | BIOSSES | MayoSRS |\n|---|---:|---:|\n| base | 81.25 | 45.55 |\n| biolord | 82.00 | 50.10 |\n"
    assert rendered.startswith(table + "\n*Produced by `python bench/quality.py --single`; from `")
    assert "load average" not in rendered and "wins:" not in rendered
    assert re.search(r"\(sha256 [0-9a-f]{12}\), rendered on \d{4}-\d\d-\d\d by `bench/docs_tables.py`\.\*\n$", rendered)
    for name in ("README.md", "docs/results.md"):
        text = (tmp_path / name).read_text()
        assert text == page.replace("(to be measured)\n", rendered)
    assert dt.problems(tmp_path) == []
    assert "updated README.md" in capsys.readouterr().out


def test_render_refuses_what_it_cannot_render(tmp_path):
    two = tmp_path / "two.log"
    two.write_text(LOG + "\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    with pytest.raises(ValueError, match=r"holds 2 tables; choose one with --table 1..2"):
        dt.render(two, "cmd")
    assert dt.render(two, "cmd", table=2).startswith("| a | b |\n|---|---|\n| 1 | 2 |\n\n")
    with pytest.raises(ValueError, match=r"--table 3: .* holds 2 table"):
        dt.render(two, "cmd", table=3)
    none = tmp_path / "none.log"
    none.write_text("no table | here\n")
    with pytest.raises(ValueError, match="no markdown table found"):
        dt.render(none, "cmd")
    with pytest.raises(ValueError, match="--note is empty"):
        dt.render(two, " ", table=1)
    with pytest.raises(ValueError, match="table name 'a b'"):
        dt.write_result(tmp_path, "a b", "x\n")


@pytest.mark.parametrize("page, message", [
    ("<!-- table: a -->\nx\n", "README.md:1: table 'a' is never closed"),
    ("<!-- table: a -->\n<!-- table: b -->\n<!-- /table -->\n", "README.md:2: table 'b' opens inside table 'a'"),
    ("x\n<!-- /table -->\n", "README.md:2: <!-- /table --> without an opening"),
    ("<!-- table:a -->\n<!-- /table -->\n", "README.md:1: malformed marker"),
    ("<!-- table: missing -->\n<!-- /table -->\n", "README.md:1: table 'missing' has no file docs/results/missing.md"),
])
def test_bad_markers_are_named_with_their_line(tmp_path, page, message):
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "README.md").write_text(page)
    found = dt.problems(tmp_path)
    assert any(p.startswith(message) for p in found), found


def test_a_result_file_included_nowhere_is_reported(tmp_path):
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "orphan.md").write_text("| a |\n|---|\n")
    (tmp_path / "README.md").write_text("# t\n")
    assert dt.problems(tmp_path) == ["docs/results/orphan.md is included nowhere; include it in README.md or "
                                     "docs/*.md between <!-- table: orphan --> and <!-- /table -->, or delete it"]


def test_layout_names_every_module_and_only_existing_ones():
    layout = (ROOT / "docs" / "layout.md").read_text()
    named = set(re.findall(r"`(biolord/[\w/]+\.py)`", layout))
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "biolord").rglob("*.py") if p.name != "__init__.py"}
    assert sorted(modules - named) == [], "modules missing from docs/layout.md"
    assert sorted(named - modules) == [], "docs/layout.md names modules that do not exist"


def test_readme_test_command_is_the_line_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    command = ci[ci.index("# --- the README's test command ---") + 1]
    assert command.startswith("pip install -e")
    assert command in (ROOT / "README.md").read_text().splitlines()


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_and_anchors_resolve():
    bad = []
    for page in _pages():
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                bad.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.is_file():
                prose = re.sub(r"^```.*?^```", "", dest.read_text(), flags=re.M | re.S)  # '# comments' in code
                anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", prose, flags=re.M)}
                if anchor not in anchors:
                    bad.append(f"{page.relative_to(ROOT)}: {target} (no heading #{anchor})")
    assert bad == []
