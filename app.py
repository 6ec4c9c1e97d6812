"""WSGI entry point: `gunicorn app:app` or `flask --app app run`."""

from multiflexi_web import create_app

app = create_app()
