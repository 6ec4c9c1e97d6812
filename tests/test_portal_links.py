"""List pages link their rows through id_link(): the same URLs as url_for, built once a page."""

from __future__ import annotations

from flask import Flask, url_for

from multiflexi_web.views.links import id_link

IDS = (1, 7, 10, 90, 123_456_789_012)


def test_row_links_are_url_for_s_urls(app: Flask) -> None:
    # Mounted under a prefix, as behind a proxy that serves the portal at /mf.
    with app.test_request_context("/", base_url="http://portal.test/mf/"):
        for endpoint, key in (("jobs.detail", "job_id"), ("runtemplates.detail", "rt_id")):
            link = id_link(endpoint, key)
            assert [link(i) for i in IDS] == [url_for(endpoint, **{key: i}) for i in IDS]
        assert id_link("jobs.detail", "job_id")(42) == "/mf/jobs/42"


def test_a_rule_with_other_zeros_falls_back_to_url_for() -> None:
    flask_app = Flask(__name__)
    # The probe's "0" is found in the fixed part first: the shortcut must not be taken.
    flask_app.add_url_rule("/v0/<int:n>/x0", "thing", lambda n: "")
    flask_app.add_url_rule("/list", "listed", lambda: "")
    with flask_app.test_request_context("/"):
        link = id_link("thing", "n")
        assert [link(i) for i in IDS] == [f"/v0/{i}/x0" for i in IDS]
        # An id that goes into the query string, not the path: still url_for's URL.
        query = id_link("listed", "before")
        assert [query(i) for i in IDS] == [url_for("listed", before=i) for i in IDS]
