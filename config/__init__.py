"""The Gantry Django project: settings, URLs, the API's plumbing and the Celery app."""

from config.celery_app import app as celery_app

__all__ = ["celery_app"]
