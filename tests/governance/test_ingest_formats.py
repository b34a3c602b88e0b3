"""Format detection and streaming validation, without a database."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from governance.ingest.formats import detect_format, validate
from pedigree.errors import InvalidInput

LIMIT = 1024 * 1024


def chunks_of(data: bytes, size: int = 7) -> list[bytes]:
    """Split into small chunks so records straddle chunk boundaries."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def check(data: bytes, data_format: str, filename: str = "f", limit: int = LIMIT):
    return validate(chunks_of(data), data_format=data_format, filename=filename, max_record_bytes=limit)


def lines(*records: object) -> bytes:
    return ("\n".join(json.dumps(r) for r in records) + "\n").encode()


class TestJsonl:
    def test_text_records_are_counted_and_their_field_marked_as_text(self):
        layout = check(lines({"text": "a", "id": 1}, {"text": "b", "id": 2}), "jsonl")
        assert (layout.layout, layout.record_count) == ("text", 2)
        assert layout.fields == [
            {"name": "text", "type": "string", "text": True},
            {"name": "id", "type": "integer", "text": False},
        ]

    def test_prompt_completion_layout_marks_both_fields_as_text(self):
        layout = check(lines({"prompt": "q", "completion": "a"}), "jsonl")
        assert layout.layout == "prompt_completion"
        assert layout.text_fields == ["prompt", "completion"]

    def test_chat_layout_is_detected_from_messages(self):
        layout = check(lines({"messages": [{"role": "user", "content": "hi"}]}), "jsonl")
        assert (layout.layout, layout.text_fields) == ("chat", ["messages"])

    def test_blank_lines_and_a_missing_final_newline_are_accepted(self):
        layout = check(b'{"text": "a"}\n\n{"text": "b"}', "jsonl")
        assert layout.record_count == 2

    def test_malformed_json_names_the_file_and_line(self):
        with pytest.raises(InvalidInput) as error:
            check(b'{"text": "a"}\n{"text": "b"}\n{"text": "c",\n', "jsonl", "claims.jsonl")
        assert error.value.details == {"file": "claims.jsonl", "line": 3}
        assert "claims.jsonl: line 3: malformed JSON" in error.value.message

    def test_a_record_without_its_text_field_names_line_and_field(self):
        with pytest.raises(InvalidInput) as error:
            check(lines({"text": "a"}, {"body": "b"}), "jsonl", "x.jsonl")
        assert error.value.details == {"file": "x.jsonl", "line": 2, "field": "text"}

    def test_a_first_record_with_no_known_text_field_is_refused(self):
        with pytest.raises(InvalidInput, match="line 1: record has no text field"):
            check(lines({"body": "b"}), "jsonl")

    def test_a_non_string_text_field_is_refused(self):
        with pytest.raises(InvalidInput, match="field 'prompt' must be a string, not integer"):
            check(lines({"prompt": 1, "completion": "x"}), "jsonl")

    def test_chat_messages_need_role_and_content(self):
        with pytest.raises(InvalidInput) as error:
            check(lines({"messages": [{"role": "user"}]}), "jsonl")
        assert error.value.details["field"] == "messages[0]"

    def test_a_line_that_is_not_an_object_is_refused(self):
        with pytest.raises(InvalidInput, match="line 1: each line must be a JSON object"):
            check(b"[1, 2]\n", "jsonl")

    def test_invalid_utf8_names_the_line(self):
        with pytest.raises(InvalidInput, match=r"line 2: invalid UTF-8"):
            check(b'{"text": "a"}\n{"text": "caf\xe9"}\n', "jsonl")

    def test_a_line_longer_than_the_record_limit_is_refused_without_buffering_it_all(self):
        with pytest.raises(InvalidInput, match=r"line 2 is longer than the 1,024-byte record limit"):
            check(b'{"text": "a"}\n' + b'{"text": "' + b"x" * 5000 + b'"}\n', "jsonl", limit=1024)

    def test_a_file_of_blank_lines_holds_no_records(self):
        with pytest.raises(InvalidInput, match="holds no records"):
            check(b"\n\n\n", "jsonl")


class TestCsv:
    def test_columns_are_typed_and_text_columns_marked(self):
        data = b"id,name,amount,note\n1,Ann,3.5,hello there\n2,Bob,4,\"multi\nline\"\n"
        layout = check(data, "csv")
        assert layout.record_count == 2
        assert {f["name"]: (f["type"], f["text"]) for f in layout.fields} == {
            "id": ("number", False),
            "name": ("string", True),
            "amount": ("number", False),
            "note": ("string", True),
        }
        assert layout.layout == "table"

    def test_prompt_and_completion_columns_give_that_layout(self):
        assert check(b"prompt,completion\nq,a\n", "csv").layout == "prompt_completion"

    def test_a_row_with_the_wrong_number_of_columns_names_row_and_line(self):
        with pytest.raises(InvalidInput) as error:
            check(b"a,b\nx,y\nonly-one\n", "csv", "t.csv")
        assert error.value.details == {"file": "t.csv", "line": 3, "row": 3}
        assert "has 1 columns; the header has 2" in error.value.message

    def test_duplicate_header_names_are_refused(self):
        with pytest.raises(InvalidInput, match="duplicate column names: a"):
            check(b"a,a\n1,2\n", "csv")

    def test_a_table_without_text_columns_is_refused(self):
        with pytest.raises(InvalidInput, match="no column holds text"):
            check(b"a,b\n1,2\n3,4\n", "csv")

    def test_invalid_utf8_names_the_line(self):
        with pytest.raises(InvalidInput, match="line 3: invalid UTF-8"):
            check(b"a,b\nx,y\nz,\xff\xfe\n", "csv")

    def test_a_header_only_file_holds_no_records(self):
        with pytest.raises(InvalidInput, match="holds no records"):
            check(b"a,b\n", "csv")


class TestTextAndParquet:
    def test_each_non_blank_line_of_text_is_a_record(self):
        assert check(b"one\n\ntwo\nthree", "text").record_count == 3

    def test_parquet_string_columns_are_text(self):
        sink = io.BytesIO()
        pq.write_table(pa.table({"id": [1, 2], "text": ["a", "b"]}), sink)
        layout = check(sink.getvalue(), "parquet")
        assert (layout.record_count, layout.text_fields, layout.layout) == (2, ["text"], "text")

    def test_bytes_that_are_not_parquet_are_refused(self):
        with pytest.raises(InvalidInput, match="is not a valid Parquet file"):
            check(b"PAR1 but not really", "parquet", "x.parquet")


@pytest.mark.parametrize(
    ("filename", "head", "expected"),
    [
        ("a.jsonl", b"", "jsonl"),
        ("a.CSV", b"", "csv"),
        ("a.txt", b"", "text"),
        ("a.parquet", b"", "parquet"),
        ("upload", b"PAR1\x00", "parquet"),
        ("upload", b'  {"text": 1}', "jsonl"),
        ("upload", b"a,b\n1,2\n", "csv"),
        ("upload", b"hello world\n", "text"),
    ],
)
def test_format_is_detected_from_extension_then_content(filename, head, expected):
    assert detect_format(filename, head) == expected


def test_an_unknown_declared_format_is_refused():
    with pytest.raises(InvalidInput, match="unknown format 'xml'"):
        detect_format("a", b"", "xml")
