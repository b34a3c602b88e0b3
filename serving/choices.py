"""Enumerations of the serving app."""

from django.db import models


class ServingAuditAction(models.TextChoices):
    """Audit log actions recorded by ``serving.services``."""

    CONSUMER_CREATED = "consumer.created"
    CONSUMER_UPDATED = "consumer.updated"
    CONSUMER_DELETED = "consumer.deleted"
