"""Run by test_api_upstream_client.py inside a venv holding upstream's unmodified client
(multiflexi-client 1.1.0): each operation against our server, results printed as one JSON.

argv: host login password company_id app_id runtemplate_id job_id foreign_job_id
"""

import json
import sys

import multiflexi_client as mf
from multiflexi_client.configuration import Configuration
from multiflexi_client.exceptions import ApiException

# Not mf.Configuration: the package's models (imported after it) include a `Configuration`
# model that shadows the client's settings class under that name.


def main() -> None:
    host, login, password = sys.argv[1:4]
    company_id, app_id, rt_id, job_id, foreign_job_id = (int(x) for x in sys.argv[4:9])
    config = Configuration(host=host, username=login, password=password)
    out = {"version": mf.__version__}
    with mf.ApiClient(config) as client:
        default = mf.DefaultApi(client)
        apps, companies = mf.AppApi(client), mf.CompanyApi(client)
        rts, jobs = mf.RuntemplateApi(client), mf.JobApi(client)
        out["ping"] = default.ping_suffix_get("json")  # typed as no body: None
        # The client declares no auth for DefaultApi's operations (status among them) though
        # upstream's server requires it there; every operation takes `_headers` for this.
        auth = {"Authorization": config.get_basic_auth_token()}
        out["status"] = default.status_suffix_get("json", _headers=auth).to_dict()
        out["apps"] = [a.to_dict() for a in apps.list_apps("json")]
        out["app"] = apps.get_app_by_id(app_id, "json").to_dict()
        out["companies"] = [c.to_dict() for c in companies.list_companies("json")]
        out["company"] = companies.get_company_by_id(company_id, "json").to_dict()
        out["runtemplates"] = [r.to_dict() for r in rts.list_run_templates("json")]
        out["runtemplate"] = rts.get_run_template_by_id(rt_id, "json").to_dict()
        out["jobs"] = [j.to_dict() for j in jobs.listjobs("json", limit=50, order="-id")]
        out["job"] = jobs.getjob_by_id(job_id, "json").to_dict()
        # Creating a job as the client does: POST /job/ with its only argument, jobId.
        out["created"] = jobs.setjob_by_id(job_id=job_id).to_dict()
        # As upstream's server expects it (Node-RED and scripts): runtemplate_id in a JSON body,
        # sent through the same client's own request machinery, auth and deserialiser.
        request = client.param_serialize(
            "POST",
            "/job/",
            header_params={"Content-Type": "application/json", "Accept": "application/json"},
            body={"runtemplate_id": rt_id, "env": {"GREETING": "from the client"}},
            auth_settings=["basicAuth"],
        )
        answer = client.call_api(*request)
        answer.read()
        made = client.response_deserialize(answer, {"201": "Job"})
        out["created_from_runtemplate"] = {"status": made.status_code, **made.data.to_dict()}
        try:
            jobs.getjob_by_id(foreign_job_id, "json")
            out["foreign"] = "visible"
        except ApiException as exc:
            out["foreign"] = exc.status
    wrong = Configuration(host=host, username=login, password=password + "-wrong")
    with mf.ApiClient(wrong) as client:
        try:
            mf.JobApi(client).listjobs("json")
            out["wrong_password"] = "accepted"
        except ApiException as exc:
            out["wrong_password"] = exc.status
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
