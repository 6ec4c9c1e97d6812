"""The database extension, created unbound and attached in create_app() (daemons need only it)."""

from __future__ import annotations

from flask_sqlalchemy import SQLAlchemy

from multiflexi_web.models.base import Base

db = SQLAlchemy(model_class=Base)
