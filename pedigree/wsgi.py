"""WSGI entry point (gunicorn pedigree.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pedigree.settings")
application = get_wsgi_application()
