"""The dashboard's HTTP API against a real cluster: JSON endpoints, push streams, refusals.

The browser tests (tests/e2e) look at the pages; these pin down what the pages are given.
"""

from __future__ import annotations

import getpass
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.client import Client, task_spec
from shoal.local import LocalCluster
from shoal.v1 import admin_pb2, jobs_pb2
from tests.conftest import eventually
from tests.webclient import Web

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path_factory.mktemp("web"), nodes=2, cores=2, web_listen="127.0.0.1:0",
                     head_args=["--heartbeat-interval", "0.5", "--web-sample-interval", "0.5"])
    with c:
        yield c


@pytest.fixture
def web(cluster: LocalCluster) -> Web:
    return Web(cluster.web_url)


def finished(client: Client, job_id: int) -> bool:
    return client.get_job(job_id).state == jobs_pb2.JOB_STATE_FINISHED


def test_the_head_serves_the_pages_and_says_who_you_are(cluster: LocalCluster, web: Web) -> None:
    assert cluster.web_url.startswith("http://127.0.0.1:")
    with web.open("/") as r:
        assert r.headers["Content-Type"].startswith("text/html")
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        assert r.read().lower().startswith(b"<!doctype html")
    # Plaintext: whoever runs the head node unless someone signs in as another (names are trusted).
    assert web.get("/api/session") == {"user": getpass.getuser(), "role": "User", "secure": False,
                                       "version": web.get("/api/session")["version"]}
    status, body = web.call("/api/session", "POST", {"user": "zoe"})
    assert status == 200 and body["user"] == "zoe" and web.cookie.startswith("shoal_user=")
    assert web.get("/api/session")["user"] == "zoe"
    overview = eventually(lambda: (o := web.get("/api/overview"))["nodes"]["connected"] == 2 and o,
                          what="both nodes in the overview")
    assert overview["cores"]["total"] == 4 and overview["nodes"]["by_state"]["Online"] == 2
    assert len(overview["throughput"]) == 60 and overview["series"]


def test_the_job_list_pages_newest_first_with_a_total(cluster: LocalCluster, web: Web) -> None:
    with Client(cluster.address) as client:
        ids = [client.submit(jobs_pb2.JobSpec(name=f"page-{i}", tasks=[task_spec("true")])) for i in range(5)]
        eventually(lambda: all(finished(client, i) for i in ids), what="the jobs to finish")
    first = web.get("/api/jobs?name=page-&page_size=2")
    assert [int(j["id"]) for j in first["jobs"]] == ids[::-1][:2]
    assert first["total"] == "5" and first["next_page_token"]
    second = web.get(f"/api/jobs?name=page-&page_size=2&page_token={first['next_page_token']}")
    assert [int(j["id"]) for j in second["jobs"]] == ids[::-1][2:4]
    assert first["jobs"][0]["state"] == "JOB_STATE_FINISHED" and first["jobs"][0]["name"] == "page-4"
    assert web.get("/api/jobs?name=page-&state=Queued,Running")["total"] == "0"
    assert web.get("/api/jobs?name=page-&state=finished")["total"] == "5"


def test_a_sweeps_grid_has_one_letter_per_instance(cluster: LocalCluster, web: Web) -> None:
    with Client(cluster.address) as client:
        done = client.submit(jobs_pb2.JobSpec(tasks=[task_spec("true", sweep=(10, 28, 2))]))
        eventually(lambda: finished(client, done), what="the sweep to finish")
        held = client.submit(jobs_pb2.JobSpec(hold=True, tasks=[task_spec("true", sweep=(1, 100_000, 1)),
                                                                task_spec("true", name="after")]))
    grid = web.get(f"/api/jobs/{done}/grid")
    assert grid["tasks"] == [{"task_id": 1, "name": "", "count": 10, "first": 10, "step": 2, "states": "F" * 10}]
    big = web.get(f"/api/jobs/{held}/grid")["tasks"]
    assert [(t["count"], set(t["states"])) for t in big] == [(100_000, {"Q"}), (1, {"Q"})]
    page = web.get(f"/api/jobs/{held}/instances?task=1&page_size=3")
    assert [i["ref"]["instance_id"] for i in page["instances"]] == [1, 2, 3] and page["next_page_token"]


def test_output_arrives_on_the_stream_as_the_task_writes_it(cluster: LocalCluster, web: Web, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    command = f"echo first line; while [ ! -e {gate} ]; do sleep 0.05; done; echo second line"
    with Client(cluster.address) as client:
        job = client.submit(jobs_pb2.JobSpec(tasks=[task_spec(command)]))
        with web.events(f"/api/jobs/{job}/tasks/1/output?instance=0") as stream:
            stream.wait_for(lambda e, d: e == "chunk" and "first line" in d["text"], what="the first line")
            assert not any("second" in (d or {}).get("text", "") for _, d in stream.seen)
            gate.touch()
            stream.wait_for(lambda e, d: e == "chunk" and "second line" in d["text"], what="the second line")
            stream.wait_for(lambda e, _: e == "end", what="the end of the output")


def test_the_push_stream_carries_job_changes_and_cluster_samples(cluster: LocalCluster, web: Web) -> None:
    with web.events("/api/events?topics=jobs,cluster,nodes") as stream:
        stream.wait_for(lambda e, d: e == "cluster" and d["nodes"]["connected"] == 2, what="a cluster sample")
        with Client(cluster.address) as client:
            job = client.submit(jobs_pb2.JobSpec(name="pushed", tasks=[task_spec("true")]))

        def ended(event: str, data: object) -> bool:
            return event == "jobs" and any(e["job_id"] == str(job) and e["job_state"] == "JOB_STATE_FINISHED"
                                           for e in data)  # type: ignore[union-attr]
        stream.wait_for(ended, what=f"job {job} Finished on the stream")
        _, nodes = stream.wait_for(lambda e, _: e == "nodes", what="the node list")
        assert sorted(n["name"] for n in nodes["nodes"]) == ["node1", "node2"]
        stream.wait_for(lambda e, d: e == "cluster" and d["minute"]["finished"] >= 1,
                        what="the run's end in this minute's throughput")


def test_a_node_page_shows_its_heartbeats_and_drain_reason(cluster: LocalCluster, web: Web) -> None:
    # The last test's task may have been running at node1's latest heartbeat: wait for one
    # from after its end (they come every 0.5 s).
    node = eventually(lambda: (n := web.get("/api/nodes/node1"))["heartbeats"] and n["heartbeats"][-1]["tasks"] == 0
                      and n, what="a heartbeat of node1 with no task running")
    assert node["state"] == "NODE_STATE_ONLINE"
    assert web.get("/api/nodes")["nodes"][0]["heartbeats"] == [], "a list leaves them out"
    with Client(cluster.address) as admin:
        admin.call_admin("DrainNode", admin_pb2.DrainNodeRequest(name="node2", reason="new disk"))
        try:
            assert "new disk" in web.get("/api/nodes/node2")["reason"]
        finally:
            admin.call_admin("SetNodeOnline", admin_pb2.SetNodeOnlineRequest(name="node2"))


def test_usage_over_time_counts_ended_jobs_in_their_hour(cluster: LocalCluster, web: Web) -> None:
    with Client(cluster.address) as client:
        job = client.submit(jobs_pb2.JobSpec(tasks=[task_spec("true")]))
        eventually(lambda: finished(client, job), what="the job to finish")
    me = getpass.getuser()
    series = eventually(lambda: (s := web.get(f"/api/usage/series?owner={me}&bucket=hour&buckets=3"))
                        ["points"][-1]["jobs"] >= 1 and s, what="the job in this hour's usage")
    assert len(series["points"]) == 3 and series["points"][0]["t"] < series["points"][-1]["t"]
    report = web.get("/api/usage?by=owner")
    assert me in [r["key"] for r in report["rows"]]


@pytest.mark.parametrize("path, status, words", [
    ("/api/jobs/abc", 400, "id must be a positive whole number"),
    ("/api/jobs/987654", 404, "job 987654 does not exist"),
    ("/api/jobs?page_size=0", 400, "page_size must be 1..1000"),
    ("/api/jobs?state=Sleeping", 400, "state 'Sleeping' is not one of"),
    ("/api/events?topics=weather", 400, "unknown topic 'weather'"),
    ("/api/usage?since=yesterday", 400, "since must be an ISO 8601 date"),
    ("/api/usage/series?bucket=week", 400, "bucket must be hour or day"),
    ("/api/nodes/nope", 404, "nope"),
    ("/api/jobs/987654/tasks/1/output", 404, "job 987654 does not exist"),
])
def test_bad_requests_say_what_to_fix(web: Web, path: str, status: int, words: str) -> None:
    got, body = web.call(path)
    assert (got, body["code"] in ("INVALID_ARGUMENT", "NOT_FOUND")) == (status, True), body
    assert words in body["error"], body


# -- a secure cluster ----------------------------------------------------------------------------

SECURE_CONFIG = """\
[head]
admins = ["root-admin"]
users_list_others_jobs = false
"""


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    state = tmp_path_factory.mktemp("secure-web")
    (state / "shoal.toml").write_text(SECURE_CONFIG)
    c = LocalCluster(state, nodes=1, cores=2, secure=True, web_listen="127.0.0.1:0",
                     head_args=["--config", str(state / "shoal.toml")])
    with c:
        yield c


def test_a_secure_dashboard_uses_the_apis_identities_and_rights(secure: LocalCluster) -> None:
    from common import tls

    ca = secure.tls_dir / tls.CA_CERT
    assert secure.web_url.startswith("https://")
    anonymous = Web(secure.web_url, ca=ca)
    status, body = anonymous.call("/api/jobs")
    assert status == 401 and body["code"] == "UNAUTHENTICATED" and "shoal user token" in body["error"]
    assert anonymous.call("/api/session") == (401, {**body, "secure": True})
    status, body = anonymous.call("/api/session", "POST", {"user": "mallory"})
    assert status == 400 and "token" in body["error"], "a secure cluster trusts no names"
    status, body = anonymous.call("/api/session", "POST", {"token": "not-a-token"})
    assert status == 401, body

    with Client(secure.address, tls=secure.admin_tls()) as admin:  # type: ignore[arg-type]
        tokens = {u: admin.call_admin("CreateUserToken", admin_pb2.CreateUserTokenRequest(user=u)).token
                  for u in ("alice", "bob")}
    alice, bob = Web(secure.web_url, ca=ca), Web(secure.web_url, ca=ca)
    assert alice.call("/api/session", "POST", {"token": tokens["alice"]})[1]["user"] == "alice"
    assert "HttpOnly" in _set_cookie(secure, ca, tokens["alice"]) and "SameSite=Strict" in _set_cookie(
        secure, ca, tokens["alice"])
    bob.headers["Authorization"] = f"Bearer {tokens['bob']}"  # what a script would send
    bobs_job = _submit_as(secure, tokens["bob"])
    assert [j["owner"] for j in bob.get("/api/jobs")["jobs"]] == ["bob"]
    assert alice.get("/api/jobs")["jobs"] == []
    status, body = alice.call(f"/api/jobs/{bobs_job}")
    assert status == 403 and "alice may not view job" in body["error"]
    assert alice.call(f"/api/jobs/{bobs_job}/grid")[0] == 403
    assert alice.call(f"/api/jobs/{bobs_job}/tasks/1/output")[0] == 403

    # A browser with a user certificate the cluster CA signed is that user, with no token.
    files = secure.user_tls("carol", "JobAdmin")
    carol = Web(secure.web_url, ca=ca, cert=(files.cert, files.key))  # type: ignore[attr-defined]
    assert carol.get("/api/session")["user"] == "carol" and carol.get("/api/session")["role"] == "JobAdmin"
    assert int(carol.get(f"/api/jobs/{bobs_job}")["id"]) == bobs_job, "a JobAdmin sees everyone's jobs"


def _set_cookie(cluster: LocalCluster, ca: Path, token: str) -> str:
    web = Web(cluster.web_url, ca=ca)
    with web.open("/api/session", "POST", {"token": token}) as r:
        return r.headers["Set-Cookie"]


def _submit_as(cluster: LocalCluster, token: str) -> int:
    from common import tls

    with Client(cluster.address, tls=tls.Files(cluster.tls_dir / tls.CA_CERT), token=token) as c:
        return c.submit(jobs_pb2.JobSpec(tasks=[task_spec("true")]))


def test_a_change_from_another_origin_is_refused_and_one_from_the_dashboard_accepted(
        cluster: LocalCluster, secure: LocalCluster) -> None:
    from common import tls

    here = cluster.web_url.rstrip("/")
    for headers, said in (({"Origin": "http://evil.example"}, "came from origin http://evil.example"),
                          ({"Origin": "null"}, "came from origin null"),
                          ({"Sec-Fetch-Site": "cross-site", "Origin": here}, "came from a cross-site page"),
                          ({"Sec-Fetch-Site": "same-site"}, "came from a same-site page"),
                          ({"Referer": "http://evil.example/attack.html"}, "came from a page of http://evil.example"),
                          ({"Origin": here.replace("127.0.0.1", "localhost")}, "came from origin http://localhost")):
        forged = Web(cluster.web_url, headers=headers)
        for method, body in (("POST", {"user": "mallory"}), ("DELETE", None)):
            with pytest.raises(urllib.error.HTTPError) as e:
                forged.open("/api/session", method, body)
            answer = json.loads(e.value.read())
            assert (e.value.code, answer["code"]) == (403, "PERMISSION_DENIED"), answer
            assert said in answer["error"] and f"not from this dashboard ({here})" in answer["error"], answer
            assert "Set-Cookie" not in e.value.headers, "no session was made"
        assert forged.get("/api/session")["user"] == getpass.getuser(), "reads are not changes"
    # A form another site posts (no JSON, no origin from an old browser) makes no session either.
    form = urllib.request.Request(cluster.web_url + "api/session", data=b'{"user": "mallory"}', method="POST",
                                  headers={"Content-Type": "text/plain"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(form, timeout=15)
    assert e.value.code == 400
    assert "send JSON with Content-Type: application/json" in json.loads(e.value.read())["error"]

    # The dashboard's own pages: what a browser sends for them.
    for headers in ({"Origin": here}, {"Sec-Fetch-Site": "same-origin", "Origin": here}, {"Referer": here + "/#/jobs"},
                    {}):
        own = Web(cluster.web_url, headers=headers)
        status, body = own.call("/api/session", "POST", {"user": "zoe"})
        assert (status, body["user"]) == (200, "zoe") and own.cookie.startswith("shoal_user="), (headers, body)
        assert own.call("/api/session", "DELETE")[0] == 200
    # On a secure cluster a token does not make a cross-origin sign-in either.
    ca = secure.tls_dir / tls.CA_CERT
    with Client(secure.address, tls=secure.admin_tls()) as admin:  # type: ignore[arg-type]
        token = admin.call_admin("CreateUserToken", admin_pb2.CreateUserTokenRequest(user="alice")).token
    status, body = Web(secure.web_url, ca=ca, headers={"Origin": "https://evil.example"}).call(
        "/api/session", "POST", {"token": token})
    assert status == 403 and "came from origin https://evil.example" in body["error"], body
    mine = Web(secure.web_url, ca=ca, headers={"Origin": secure.web_url.rstrip("/")})
    assert mine.call("/api/session", "POST", {"token": token})[1]["user"] == "alice"
    assert mine.get("/api/session")["user"] == "alice"


def test_the_dashboard_shows_others_jobs_without_what_they_run(cluster: LocalCluster, web: Web) -> None:
    secret = "hunter2-web"
    with Client(cluster.address, user="bobweb") as bob:
        job = bob.submit(jobs_pb2.JobSpec(name="bobs-web-job", tasks=[
            task_spec(f"echo {secret}", environment={"PASSWORD": secret}, stdout_path=f"/tmp/{secret}.out"),
            task_spec(f"echo {secret}-*", sweep=(1, 3, 1))]))
        bob.wait_job(job)
    listed = web.get("/api/jobs?owner=bobweb")["jobs"]
    assert [(int(j["id"]), j["name"], j["redacted"]) for j in listed] == [(job, "bobs-web-job", True)]
    shown = web.get(f"/api/jobs/{job}")
    assert shown["owner"] == "bobweb" and shown["state"] == "JOB_STATE_FINISHED" and shown["redacted"]
    assert [t["spec"]["command_line"] for t in shown["tasks"]] == ["", ""]
    assert [t["state"] for t in shown["tasks"]] == ["TASK_STATE_FINISHED"] * 2
    instances = web.get(f"/api/jobs/{job}/instances?task=2")["instances"]
    assert [(i["state"], i["command_line"], i["redacted"]) for i in instances] == \
        [("TASK_STATE_FINISHED", "", True)] * 3
    for body in (listed, shown, instances, web.get(f"/api/jobs/{job}/grid")):
        assert secret not in json.dumps(body)
    status, body = web.call(f"/api/jobs/{job}/tasks/1/output")
    assert (status, body["code"]) == (403, "PERMISSION_DENIED") and "may not read the output of job" in body["error"]
    # bobweb sees all of it.
    status, _ = Web(cluster.web_url).call("/api/session", "POST", {"user": "bobweb"})
    bobs = Web(cluster.web_url, cookie="shoal_user=bobweb")
    assert status == 200 and bobs.get(f"/api/jobs/{job}")["tasks"][0]["spec"]["command_line"] == f"echo {secret}"
    with bobs.events(f"/api/jobs/{job}/tasks/1/output") as stream:
        stream.wait_for(lambda e, d: e == "chunk" and secret in d["text"], what="bob's own output")


def test_the_dashboard_is_off_unless_configured(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, nodes=0) as c:
        assert c.web_url == ""
        assert not (tmp_path / "head" / "web.addr").exists()
