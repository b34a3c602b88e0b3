"""PII scanning and redaction with Microsoft Presidio.

- ``config``: the scanner configuration (a YAML file in the repo) and its digest.
- ``engine``: builds Presidio's analyzer offline (spaCy pipeline or patterns only).
- ``records``: streams every string value of a version (per field path) out of the artifact store.
- ``scanner``: batches texts through the analyzer on a process pool and
  aggregates findings into a report that never holds raw PII.
- ``redaction``: rewrites a version with presidio-anonymizer operators.
- ``services``: the workflows (scan, cancel, review, redact), called by the
  API, the admin console, the ``scan`` command and the Celery tasks.

Presidio is imported lazily (it takes seconds and hundreds of MB), so web
processes that never scan do not pay for it.
"""
