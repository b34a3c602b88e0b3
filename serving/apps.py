from django.apps import AppConfig


class ServingConfig(AppConfig):
    """Endpoints, consumers and the OpenAI-compatible inference API (later issues)."""

    name = "serving"
    verbose_name = "Serving"
