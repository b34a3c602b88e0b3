"""The PII entity types the scanner knows, without loading Presidio.

A consumer's PII clearances and a steward's review name entity types; a name
the scanner never reports ("BOGUS", "person", "EMAIL" for EMAIL_ADDRESS) would
be a clearance that never matches a fact, or a review of nothing. Both are
checked against this set: every type of Presidio's predefined recognizers
(enabled by default or by ``enable_predefined``), the NER types, and the
custom recognizers of the scanner configuration.

Presidio itself is not imported here: importing it costs seconds and hundreds
of megabytes, which a web process validating a form should not pay. The test
``test_known_entity_types_cover_everything_the_real_scanner_reports`` keeps the
list below in step with the installed Presidio.
"""

from __future__ import annotations

from governance.pii.config import ScanConfig, load_config

# Every entity type of presidio-analyzer's predefined (pattern and NER) recognizers.
PRESIDIO_ENTITY_TYPES: frozenset[str] = frozenset(
    {
        "ABA_ROUTING_NUMBER", "AGE", "AU_ABN", "AU_ACN", "AU_MEDICARE", "AU_TFN", "CA_POSTAL_CODE", "CA_SIN",
        "CREDIT_CARD", "CRYPTO", "DATE_TIME", "DE_BSNR", "DE_FUEHRERSCHEIN", "DE_HANDELSREGISTER",
        "DE_HEALTH_INSURANCE", "DE_ID_CARD", "DE_KFZ", "DE_LANR", "DE_PASSPORT", "DE_PLZ", "DE_SOCIAL_SECURITY",
        "DE_TAX_ID", "DE_TAX_NUMBER", "DE_VAT_ID", "EMAIL_ADDRESS", "ES_NIE", "ES_NIF", "ES_PASSPORT",
        "FI_PERSONAL_IDENTITY_CODE", "IBAN_CODE", "IN_AADHAAR", "IN_GSTIN", "IN_PAN", "IN_PASSPORT",
        "IN_VEHICLE_REGISTRATION", "IN_VOTER", "IP_ADDRESS", "IT_DRIVER_LICENSE", "IT_FISCAL_CODE",
        "IT_IDENTITY_CARD", "IT_PASSPORT", "IT_VAT_CODE", "KR_BRN", "KR_DRIVER_LICENSE", "KR_FRN", "KR_PASSPORT",
        "KR_RRN", "LOCATION", "MAC_ADDRESS", "MEDICAL_LICENSE", "NG_NIN", "NG_VEHICLE_REGISTRATION", "NRP",
        "ORGANIZATION", "PERSON", "PHONE_NUMBER", "PH_PASSPORT", "PH_TIN", "PH_UMID", "PL_PESEL",
        "SE_ORGANISATIONSNUMMER", "SE_PERSONNUMMER", "SG_NRIC_FIN", "SG_UEN", "TH_TNIN", "TR_LICENSE_PLATE",
        "TR_NATIONAL_ID", "UK_DRIVING_LICENCE", "UK_NHS", "UK_NINO", "UK_PASSPORT", "UK_POSTCODE",
        "UK_VEHICLE_REGISTRATION", "URL", "US_BANK_NUMBER", "US_CLAIM_NUMBER", "US_DRIVER_LICENSE",
        "US_HEALTH_INSURANCE_MEMBER_ID", "US_ITIN", "US_MBI", "US_NPI", "US_PASSPORT", "US_PRESCRIPTION_NUMBER",
        "US_PRIOR_AUTHORIZATION_NUMBER", "US_PROVIDER_TAX_ID", "US_REFERRAL_NUMBER", "US_SSN", "UUID",
        "ZA_COMPANY_REGISTRATION", "ZA_DRIVER_LICENSE", "ZA_ID_NUMBER", "ZA_INCOME_TAX_NUMBER", "ZA_LICENSE_PLATE",
        "ZA_MOBILE_NUMBER", "ZA_PASSPORT", "ZA_TELEPHONE_NUMBER", "ZA_TRAFFIC_REGISTER_NUMBER", "ZA_VAT_NUMBER",
    }
)


def known_entity_types(config: ScanConfig | None = None) -> frozenset[str]:
    """Every entity type the scanner (``config``, default: the configured one) can report."""
    config = config or load_config()
    custom = {str(recognizer["supported_entity"]) for recognizer in config.custom_recognizers}
    return PRESIDIO_ENTITY_TYPES | set(config.ner_entities) | custom


def unknown_entity_types(names: list[str] | tuple[str, ...], config: ScanConfig | None = None) -> list[str]:
    """The names in ``names`` that are not entity types the scanner knows (in the order given)."""
    known = known_entity_types(config)
    return [name for name in names if name not in known]


def describe_unknown(names: list[str]) -> str:
    """A message naming the unknown types, with the case-insensitive match when there is one."""
    known = known_entity_types()
    by_upper = {name.upper(): name for name in known}
    parts = []
    for name in names:
        hint = f' (did you mean "{by_upper[name.upper()]}"?)' if name.upper() in by_upper else ""
        parts.append(f'"{name}"{hint}')
    return (
        f"unknown PII entity type {', '.join(parts)}: use a type the scanner reports, e.g. PERSON, "
        "EMAIL_ADDRESS, PHONE_NUMBER, US_SSN (all: Presidio's predefined types and the custom recognizers "
        "of the scanner configuration)"
    )
