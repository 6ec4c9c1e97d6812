"""Browser hardening headers on every portal response (CSP, framing, sniffing, referrer, HSTS)."""

from __future__ import annotations

from flask import Flask
from werkzeug.wrappers import Response

# Nothing inline: scripts and styles come from /static only, so injected markup cannot run or
# restyle the page. htmx runs under it: its indicator style is off (meta htmx-config; the rules
# are in app.css) and nothing uses hx-on, hx-vals "js:" or trigger filters, which need eval.
CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
    )
)
HSTS = "max-age=31536000"
FIXED = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def install(app: Flask, *, https: bool) -> None:
    """Add the headers after every request; `https` (MULTIFLEXI_SECURE_COOKIES) adds HSTS."""

    def _harden(resp: Response) -> Response:
        # setdefault: a view with a stricter policy of its own (artifact downloads) keeps it.
        resp.headers.setdefault("Content-Security-Policy", CSP)
        for name, value in FIXED.items():
            resp.headers.setdefault(name, value)
        if https:
            resp.headers.setdefault("Strict-Transport-Security", HSTS)
        return resp

    app.after_request(_harden)
