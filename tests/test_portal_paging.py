"""The application and RunTemplate lists page through any number of rows, filters kept."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert

from multiflexi_web.extensions import db
from multiflexi_web.models import RunTemplate
from tests.factories import add_member, client_for, make_app, make_company, make_user

NEXT = re.compile(r'rel="next" href="([^"]+)"')
RT_LINK = re.compile(r'href="/runtemplates/(\d+)"')


def _bulk_runtemplates(company_id: int, app_id: int, n: int, prefix: str = "rt") -> None:
    rows = [
        {"company_id": company_id, "application_id": app_id, "name": f"{prefix}{i:05d}"}
        for i in range(n)
    ]
    db.session.execute(insert(RunTemplate), rows)
    db.session.commit()


def _walk(client: FlaskClient, url: str) -> tuple[list[int], list[str]]:
    """Follow "Next" from `url` to the end: every row id seen, and every page's count line."""
    seen: list[int] = []
    counts: list[str] = []
    while url:
        html = client.get(url.replace("&amp;", "&")).get_data(as_text=True)
        seen += [int(i) for i in RT_LINK.findall(html)]
        counts += re.findall(r'id="page-count">([^<]*)<', html)
        link = NEXT.search(html)
        url = link.group(1) if link else ""
    return seen, counts


def test_runtemplate_list_pages_through_2500_to_the_last(app: Flask) -> None:
    company, application = make_company(), make_app()
    _bulk_runtemplates(company.id, application.id, 2500)
    client = client_for(app, make_user(is_admin=True))
    seen, counts = _walk(client, "/runtemplates/")
    assert len(seen) == 2500 == len(set(seen))
    assert counts[0] == "1-50 of 2500 · page 1 of 50"
    assert counts[-1] == "2451-2500 of 2500 · page 50 of 50"
    last = client.get("/runtemplates/?page=50").get_data(as_text=True)
    assert "rt02499" in last and 'rel="next"' not in last and 'rel="prev"' in last
    past_the_end = client.get("/runtemplates/?page=999").get_data(as_text=True)
    assert "rt02499" in past_the_end


def test_runtemplate_paging_keeps_filters_and_company_scope(app: Flask) -> None:
    mine, other = make_company(), make_company()
    app_a, app_b = make_app(), make_app()
    _bulk_runtemplates(mine.id, app_a.id, 120, "a")
    _bulk_runtemplates(mine.id, app_b.id, 30, "b")
    _bulk_runtemplates(other.id, app_a.id, 70, "hidden")
    user = make_user()
    add_member(user, mine, "viewer")
    client = client_for(app, user)
    seen, counts = _walk(client, f"/runtemplates/?app={app_a.id}")
    assert len(seen) == 120 and counts[0] == "1-50 of 120 · page 1 of 3"
    html = client.get(f"/runtemplates/?app={app_a.id}").get_data(as_text=True)
    assert f"app={app_a.id}" in NEXT.search(html).group(1)  # type: ignore[union-attr]
    everything, _ = _walk(client, "/runtemplates/?limit=100")
    assert len(everything) == 150  # the other company's 70 stay invisible


def test_application_list_pages_with_search_and_tag_kept(app: Flask) -> None:
    for i in range(60):
        make_app(f"tagged{i:03d}", tags=["bank", "ö-tag"])
    for i in range(10):
        make_app(f"other{i:03d}", tags=["mail"])
    client = client_for(app, make_user())
    html = client.get("/applications/?tag=bank").get_data(as_text=True)
    assert "1-50 of 60" in html and "other000" not in html
    link = NEXT.search(html)
    assert link and "tag=bank" in link.group(1)
    second = client.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "tagged059" in second and "51-60 of 60" in second
    assert "1-10 of 10" in client.get("/applications/?tag=mail").get_data(as_text=True)
    unicode_tag = client.get("/applications/?tag=ö-tag").get_data(as_text=True)
    assert "of 60" in unicode_tag
    searched = client.get("/applications/?q=other00&tag=mail").get_data(as_text=True)
    assert "1-10 of 10" in searched and ">ö-tag</a>" in searched  # every tag still offered
