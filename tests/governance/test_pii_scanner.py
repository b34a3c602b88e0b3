"""The scanning engine: records in, an aggregate report out; bad input never
crashes it, long texts keep their offsets, the pool finds what one process finds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from governance.pii import scanner
from governance.pii.config import load_config
from governance.pii.engine import get_analyzer
from governance.pii.records import iter_bytes, iter_records
from governance.pii.scanner import mask_value, scan_records, split_text, summarize
from pedigree.errors import InvalidInput
from tests.governance.pii_support import jsonl_bytes


def scan_jsonl(data: bytes, *, workers: int = 1, **overrides: object) -> dict:
    config = load_config().with_overrides(**overrides) if overrides else load_config()
    records = iter_records(iter_bytes(data), data_format="jsonl")
    return scan_records(records, config, workers=workers)


def test_an_email_is_masked_as_first_letters_and_top_level_domain() -> None:
    assert mask_value("john.smith@example.com") == "j***@e***.com"


def test_other_values_keep_only_the_first_letter_of_each_word() -> None:
    assert mask_value("Maria Garcia") == "M*** G***"
    assert mask_value("536-22-8714") == "5***-*-8***"


def test_every_position_of_a_long_text_is_owned_by_exactly_one_chunk() -> None:
    text = "x" * 50_123
    owned = []
    for offset, chunk, start, end in split_text(text, 20_000, 200):
        assert len(chunk) <= 20_000
        owned.append((offset + start, offset + end))
    assert owned[0][0] == 0 and owned[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(owned, owned[1:], strict=False))


def test_a_5_mb_record_is_scanned_in_chunks_with_offsets_of_the_whole_text() -> None:
    filler = "lorem ipsum dolor sit amet " * 200_000  # 5.4 MB
    positions = {19_890: "first@example.com", 19_990: "second@example.com", 2_500_000: "third@example.com"}
    text = filler
    for position, email in positions.items():
        text = text[: position - 1] + f" {email} " + text[position + len(email) + 1 :]
    state = scan_jsonl(jsonl_bytes(text), nlp_engine="none", entities=["EMAIL_ADDRESS"])
    email = state["findings"]["text"]["EMAIL_ADDRESS"]
    assert email["count"] == 3  # once each, though two sit on a chunk boundary
    assert sorted(sample["start"] for sample in email["samples"]) == sorted(positions)
    assert state["chunked_texts"] == 1


def test_undecodable_bytes_are_reported_and_the_record_is_still_scanned() -> None:
    data = b'{"text": "mail jane@example.com \xff\xfe now"}\n' + jsonl_bytes("call bob@example.org")
    state = scan_jsonl(data)
    assert state["findings"]["text"]["EMAIL_ADDRESS"]["count"] == 2
    assert "undecodable bytes" in state["problems"][0]


def test_binary_junk_is_reported_and_the_rest_of_the_file_is_scanned() -> None:
    data = jsonl_bytes("write to ann@example.com") + bytes(range(256)).replace(b"\n", b"") + b"\n" + jsonl_bytes("and to lee@example.com")
    state = scan_jsonl(data)
    assert state["records_scanned"] == 3
    assert state["findings"]["text"]["EMAIL_ADDRESS"]["count"] == 2
    assert "record 2 (line 2): not valid JSON; not scanned" in state["problems"]


def test_empty_text_fields_are_counted_not_scanned() -> None:
    data = jsonl_bytes("", "   ", "hello")
    state = scan_jsonl(data)
    assert state["empty_fields"] == 2 and state["texts_scanned"] == 1


def test_a_record_in_an_unknown_script_is_flagged_and_its_patterns_still_found() -> None:
    state = scan_jsonl(jsonl_bytes("Свяжитесь с Иваном Петровым по адресу ivan.petrov@example.ru завтра утром"))
    assert state["non_latin_records"] == 1
    assert state["findings"]["text"]["EMAIL_ADDRESS"]["count"] == 1


def test_chat_messages_are_reported_per_role() -> None:
    data = (json.dumps({"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "I am at jo@example.com"}]}) + "\n").encode()
    state = scan_jsonl(data)
    assert set(state["findings"]) == {"messages.user"}


def test_csv_columns_are_reported_per_field() -> None:
    data = b"id,name,ssn,note\n1,Maria Garcia,536-22-8714,water damage\n2,James Smith,421-55-1234,roof\n"
    records = iter_records(iter_bytes(data), data_format="csv")
    state = scan_records(records, load_config(), workers=1)
    assert state["findings"]["ssn"]["US_SSN"]["records"] == 2
    assert state["findings"]["name"]["PERSON"]["count"] == 2


def test_the_process_pool_finds_exactly_what_one_process_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scanner, "POOL_RECYCLE_TEXTS", 50)  # several pools, replaced mid-scan
    texts = [f"Customer {i}: Maria Garcia, maria{i}@example.com, card 4111 1111 1111 1111, from Boston." for i in range(300)]
    data = jsonl_bytes(*texts, *["nothing here"] * 300)
    one = summarize(scan_jsonl(data, workers=1, batch_size=16))
    scanner._result_cache.clear()  # the workers must analyse, not inherit the answers
    pool = summarize(scan_jsonl(data, workers=2, batch_size=16))
    assert pool == one


def test_custom_recognizers_from_the_config_file_appear_like_built_in_ones() -> None:
    state = scan_jsonl(jsonl_bytes("Badge of employee EMP-123456 is on Project Kestrel, acct ACME-NY-1234567."))
    assert {"EMPLOYEE_ID", "PROJECT_CODENAME", "CUSTOMER_ACCOUNT"} <= set(state["findings"]["text"])


def test_without_a_ner_model_names_and_places_are_marked_not_scanned() -> None:
    analyzer = get_analyzer(load_config(), force_no_ner=True)
    assert analyzer.ner_available is False
    assert {"PERSON", "LOCATION"} <= set(analyzer.not_scanned)
    state = scan_jsonl(jsonl_bytes("Maria Garcia lives in Boston, mail maria@example.com"), nlp_engine="none")
    assert set(state["findings"]["text"]) == {"EMAIL_ADDRESS", "URL"}


def test_a_missing_spacy_package_falls_back_to_patterns_instead_of_downloading() -> None:
    analyzer = get_analyzer(load_config().with_overrides(nlp_model="en_core_web_does_not_exist"))
    assert analyzer.ner_available is False
    assert "PERSON" in analyzer.not_scanned


def test_the_config_digest_changes_with_the_threshold_and_not_with_the_worker_count() -> None:
    config = load_config()
    assert config.with_overrides(score_threshold=0.9).digest != config.digest
    assert config.with_overrides(workers=7).digest == config.digest


def test_a_custom_recognizer_without_patterns_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text("recognizers:\n  - name: x\n    supported_entity: BADGE\n")
    (tmp_path / "scanner.yaml").write_text("custom_recognizers: [mine.yaml]\n")
    with pytest.raises(InvalidInput, match=r"mine.yaml: recognizers\[0\] \(BADGE\) needs patterns"):
        load_config(tmp_path / "scanner.yaml")


def test_repeated_texts_get_the_same_findings_as_the_first_time() -> None:
    from governance.pii.scanner import analyze_texts

    text = "Write to maria.garcia@example.com from Boston."
    first, again = analyze_texts(load_config(), [text, "other text", text])[0], analyze_texts(load_config(), [text])[0]
    assert first == again and first[0]


def test_a_predefined_recognizer_presidio_ships_switched_off_can_be_switched_on() -> None:
    text = "my national insurance number is AB 12 34 56 C"
    assert "UK_NINO" not in scan_jsonl(jsonl_bytes(text))["findings"].get("text", {})
    state = scan_jsonl(jsonl_bytes(text), enable_predefined=["UkNinoRecognizer"])
    assert state["findings"]["text"]["UK_NINO"]["count"] == 1


def test_switching_on_an_unknown_recognizer_is_refused_naming_it() -> None:
    with pytest.raises(InvalidInput, match="NoSuchRecognizer, which is not one of Presidio's predefined recognizers"):
        get_analyzer(load_config().with_overrides(enable_predefined=["NoSuchRecognizer"]))
