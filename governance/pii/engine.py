"""Presidio's analyzer, built offline from a ``ScanConfig``.

``AnalyzerEngine()`` with no arguments downloads spaCy's large English model,
which fails offline; here the NLP engine is configured explicitly with the
installed small pipeline (or, when no NER model is installed, Presidio's
``no_op`` engine, so the pattern recognizers still run). One analyzer is
built per process and configuration, and reused.
"""

from __future__ import annotations

import logging
import threading
import types
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

from governance.pii.config import ScanConfig
from pedigree.errors import InvalidInput

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine

logger = logging.getLogger(__name__)
_lock = threading.Lock()


@dataclass(frozen=True)
class Analyzer:
    """A ready analyzer and what it can and cannot find."""

    engine: AnalyzerEngine
    config: ScanConfig
    ner_available: bool
    entities: tuple[str, ...]
    not_scanned: tuple[str, ...]
    versions: dict[str, str]

    def analyze(self, text: str, nlp_artifacts: Any = None) -> list[Any]:
        """Findings in one text, with this configuration's threshold and entity types."""
        return self.engine.analyze(
            text=text,
            language=self.config.language,
            entities=list(self.entities),
            score_threshold=self.config.score_threshold,
            nlp_artifacts=nlp_artifacts,
        )


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


def model_installed(model: str) -> bool:
    """Whether the spaCy pipeline package is installed (never downloads it)."""
    if not model:
        return False
    import spacy.util

    return bool(spacy.util.is_package(model))


def _offline_tldextract() -> None:
    """Presidio's email recognizer calls ``tldextract.extract``, which fetches the
    public suffix list on first use; give it the bundled snapshot instead."""
    import tldextract
    from presidio_analyzer.predefined_recognizers.generic import email_recognizer

    if not isinstance(email_recognizer.tldextract, types.SimpleNamespace):
        extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
        email_recognizer.tldextract = types.SimpleNamespace(extract=extractor)  # type: ignore[assignment]


def build_analyzer(config: ScanConfig, *, force_no_ner: bool = False) -> Analyzer:
    """Build an analyzer for ``config`` (uncached; see ``get_analyzer``)."""
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, predefined_recognizers
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    _offline_tldextract()
    # Presidio logs every analyze call at INFO: noise in worker logs, and slow.
    logging.getLogger("presidio-analyzer").setLevel(logging.WARNING)
    use_ner = config.nlp_engine == "spacy" and not force_no_ner and model_installed(config.nlp_model)
    if config.nlp_engine == "spacy" and not use_ner and not force_no_ner:
        logger.warning(
            "spaCy pipeline %s is not installed: scanning with pattern recognizers only "
            "(names and places are not scanned)",
            config.nlp_model,
        )
    if use_ner:
        nlp_configuration: dict[str, Any] = {
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": config.language, "model_name": config.nlp_model}],
            "ner_model_configuration": config.ner_model_configuration,
        }
    else:
        nlp_configuration = {
            "nlp_engine_name": "no_op",
            "models": [{"lang_code": config.language, "model_name": "no_op"}],
        }
    nlp_engine = NlpEngineProvider(nlp_configuration=nlp_configuration).create_engine()
    if use_ner:
        pipeline = nlp_engine.nlp[config.language]  # type: ignore[attr-defined]
        for component in config.exclude_components:
            if component in pipeline.pipe_names:
                pipeline.disable_pipe(component)
    registry = RecognizerRegistry(supported_languages=[config.language])
    presidio_logger = logging.getLogger("presidio-analyzer")
    # Loading warns once per recognizer of another language: dozens of lines of noise.
    presidio_logger.setLevel(logging.ERROR)
    try:
        registry.load_predefined_recognizers(languages=[config.language], nlp_engine=nlp_engine)
    finally:
        presidio_logger.setLevel(logging.WARNING)
    loaded = {str(getattr(recognizer, "name", "")) for recognizer in registry.recognizers}
    for class_name in config.enable_predefined:
        if class_name in loaded:
            continue
        recognizer_class = getattr(predefined_recognizers, class_name, None)
        if recognizer_class is None:
            raise InvalidInput(
                f"PII scanner configuration {config.source}: enable_predefined names {class_name}, "
                "which is not one of Presidio's predefined recognizers",
                field="enable_predefined",
            )
        registry.add_recognizer(recognizer_class(supported_language=config.language))
    for recognizer in config.custom_recognizers:
        registry.add_pattern_recognizer_from_dict({**recognizer, "supported_language": config.language})
    engine = AnalyzerEngine(
        nlp_engine=nlp_engine, registry=registry, supported_languages=[config.language]
    )
    supported = set(engine.get_supported_entities(config.language))
    wanted = set(config.entities) if config.entities is not None else supported
    entities = tuple(sorted(wanted & supported))
    ner_wanted = set(config.ner_entities) if config.entities is None else set(config.ner_entities) & wanted
    not_scanned = tuple(sorted(ner_wanted - supported))
    versions = {
        "presidio_analyzer": _package_version("presidio-analyzer"),
        "presidio_anonymizer": _package_version("presidio-anonymizer"),
        "spacy": _package_version("spacy"),
        "model": config.nlp_model if use_ner else "none (pattern recognizers only)",
        "model_version": _model_version(config.nlp_model) if use_ner else "",
    }
    return Analyzer(
        engine=engine,
        config=config,
        ner_available=use_ner,
        entities=entities,
        not_scanned=not_scanned,
        versions=versions,
    )


def _model_version(model: str) -> str:
    version = _package_version(model) or _package_version(model.replace("_", "-"))
    if version:
        return version
    try:
        import spacy

        return str(spacy.load(model).meta.get("version", ""))
    except Exception:  # pragma: no cover - only for odd installs
        return ""


_analyzers: dict[tuple[str, bool], Analyzer] = {}


def get_analyzer(config: ScanConfig, *, force_no_ner: bool = False) -> Analyzer:
    """The process's analyzer for ``config``, built on first use and kept."""
    key = (config.digest, force_no_ner)
    with _lock:
        analyzer = _analyzers.get(key)
        if analyzer is None:
            if len(_analyzers) >= 4:
                _analyzers.pop(next(iter(_analyzers)))
            analyzer = _analyzers[key] = build_analyzer(config, force_no_ner=force_no_ner)
        return analyzer
