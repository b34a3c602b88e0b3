from django.apps import AppConfig


class CustomizationConfig(AppConfig):
    """Base-model registry, fine-tune jobs and model versions (later issues)."""

    name = "customization"
    verbose_name = "Customization"
