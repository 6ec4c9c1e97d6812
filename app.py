"""WSGI entry point: `gunicorn app:app` or `flask --app app run`."""

from multiflexi_web import create_app
from multiflexi_web.security.process import forget_keys, private_umask

private_umask()  # before anything is created: the portal's files are its user's only
app = create_app()
forget_keys()  # read into the app's config; no child of the portal inherits them
