"""The CSVs the wings exchange: core.tables reads them as strings, synth.run.records checks
columns."""

from __future__ import annotations

import pytest

from maskforge.core.tables import read_string_csv
from maskforge.synth.run.records import CSV_COLUMNS, read_synthesis_table


def test_every_cell_is_a_string(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,c\n1,,x\n02,3.5,\n")
    df = read_string_csv(tmp_path / "t.csv")
    rows = df.to_dict("records")
    assert rows == [{"a": "1", "b": "", "c": "x"}, {"a": "02", "b": "3.5", "c": ""}]


def test_bad_csvs_give_one_line_errors(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"^Manifest .*empty.csv is empty\.$"):
        read_string_csv(tmp_path / "empty.csv", "Manifest ")
    (tmp_path / "bad.csv").write_bytes(b"a,b\n\xff\xfe,1\n")
    with pytest.raises(ValueError, match="is not a valid CSV") as info:
        read_string_csv(tmp_path / "bad.csv")
    assert "\n" not in str(info.value)


def test_synthesis_table_names_missing_columns(tmp_path):
    (tmp_path / "synthesis.csv").write_text(",".join(CSV_COLUMNS) + "\n")
    table = read_synthesis_table(tmp_path / "synthesis.csv", ("input", "status"))
    assert tuple(table.columns) == CSV_COLUMNS
    (tmp_path / "old.csv").write_text("input,status\na.jpg,ok\n")
    with pytest.raises(ValueError, match=r"lacks column\(s\) label, output \(see docs/formats.md"):
        read_synthesis_table(tmp_path / "old.csv", ("input", "label", "output"))


def test_a_row_with_more_fields_than_the_header_is_named(tmp_path):
    # pandas would take the first column as the index and shift every value left by one.
    (tmp_path / "t.csv").write_text("image,left,top\na.jpg,1,2,3\nb.jpg,4,5\n")
    with pytest.raises(ValueError, match=r"t\.csv is not a valid CSV: row 2 has 4 fields") as info:
        read_string_csv(tmp_path / "t.csv")
    assert "the header has 3" in str(info.value) and "\n" not in str(info.value)
    (tmp_path / "later.csv").write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(ValueError, match=r"later\.csv is not a valid CSV: row 3 has 3 fields"):
        read_string_csv(tmp_path / "later.csv")


def test_short_rows_and_empty_cells_are_empty_strings(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,c\n1\n,,\n")
    df = read_string_csv(tmp_path / "t.csv")
    assert df.to_dict("records") == [{"a": "1", "b": "", "c": ""}, {"a": "", "b": "", "c": ""}]
    assert not df.isna().any().any()


def test_a_fifo_or_a_folder_is_refused_unopened(tmp_path, fifo):
    pipe = fifo(tmp_path / "pipe.csv")
    with pytest.raises(ValueError, match=r"pipe\.csv is not a regular file \(a FIFO\)"):
        read_string_csv(pipe, "Manifest ")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(ValueError, match=r"dir\.csv is a directory"):
        read_string_csv(tmp_path / "dir.csv")
