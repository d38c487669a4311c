"""One delimited-file reader: benchmark files and parallel names read the same way, strings exact."""

import pytest

from biolord.data.delimited import dialect, read_delimited, stream_delimited
from biolord.data.parallel import ParallelDataError, _file_records
from biolord.data.tables import read_options
from biolord.evaluation.files import BenchmarkFileError, read_table


def test_parallel_names_keep_every_field_as_written(tmp_path):
    """No type guessing: an id with leading zeros and a name spelled like a missing value stay as they are;
    a TSV quote is text (quoting off), so it cannot swallow the rows after it."""
    path = tmp_path / "par.tsv"
    path.write_text('id\ten\txx\tlang\n0012\tNA\tNA-Wert\tde\n0013\t"quoted\t"zitiert\tde\n0014\theart\tHerz\tde\n')
    records, available = _file_records(str(path))
    assert available == ["id", "en", "xx", "lang"]
    assert [r["id"] for r in records] == ["0012", "0013", "0014"]
    assert records[0]["en"] == "NA" and records[1]["en"] == '"quoted' and records[2]["xx"] == "Herz"


def test_one_dialect_per_extension_for_whole_files_and_streamed_sources(tmp_path):
    assert dialect("a.TSV") == ("\t", "none") and dialect("b.csv") == (",", "minimal") and dialect("c.jsonl") is None
    tsv_builder, tsv = read_options({"type": "file", "path": str(tmp_path / "x.tsv")})
    assert tsv_builder == "csv" and tsv["delimiter"] == "\t" and tsv["quoting"] == 3  # csv.QUOTE_NONE
    csv_file = tmp_path / "p.csv"
    csv_file.write_text('en,xx,lang\n"heart, the organ","Herz, das Organ",de\n')
    assert _file_records(str(csv_file))[0] == [{"en": "heart, the organ", "xx": "Herz, das Organ", "lang": "de"}]


def test_reading_errors_are_the_callers_error_and_name_the_file(tmp_path):
    latin = tmp_path / "latin.tsv"
    latin.write_bytes("s1\ts2\tscore\ncaf\xe9\tb\t1\n".encode("latin-1"))
    with pytest.raises(BenchmarkFileError, match=r"latin\.tsv is not UTF-8: byte 0xe9 at byte 15 \(line 2\)"):
        read_table(latin)
    with pytest.raises(ParallelDataError, match=r"data\.source=.*latin\.tsv is not UTF-8: byte 0xe9"):
        _file_records(str(latin))
    only_header = tmp_path / "h.tsv"
    only_header.write_text("s1\ts2\n\n  \t \n")
    with pytest.raises(BenchmarkFileError, match=r"h\.tsv has a header but no data rows"):
        read_table(only_header)
    table = read_delimited(only_header, header=False)
    assert table.rows == [(1, ["s1", "s2"])]  # blank rows left out, line numbers kept
    with pytest.raises(ValueError, match=r"quoting='double' .* choose one of \['minimal', 'none'\]"):
        read_delimited(only_header, quoting="double")
    ok = tmp_path / "ok.tsv"
    ok.write_text("s1\ts2\tscore\na\tb\t1\n")
    with pytest.raises(BenchmarkFileError, match=r"column 'gold' \(score\) not found .*available: \['s1', 's2', 'score'\]"):
        read_table(ok).column_index("gold", "score")


def test_comment_lines_are_skipped_and_rows_keep_the_files_line_numbers(tmp_path):
    """HPO's phenotype.hpoa starts with '#' lines before its header; a '#' inside a field is text."""
    path = tmp_path / "c.tsv"
    path.write_text("#description: x\n#version: 1\nid\tname\n1\ta\n# a note\n2\tb #2\n")
    table = read_delimited(path, quoting="none", comment="#")
    assert table.columns == ["id", "name"]
    assert table.rows == [(4, ["1", "a"]), (6, ["2", "b #2"])]
    columns, rows = stream_delimited(path, quoting="none", comment="#")
    assert columns == ["id", "name"] and next(rows) == (4, ["1", "a"])  # one row at a time
    assert read_delimited(path, quoting="none").columns == ["#description: x"]  # without comment=: a row like any
    only_comments = tmp_path / "o.tsv"
    only_comments.write_text("#a\n#b\n")
    with pytest.raises(ValueError, match=r"o\.tsv is empty"):
        stream_delimited(only_comments, comment="#")
