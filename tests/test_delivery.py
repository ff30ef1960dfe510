"""Answering ROS: the wire format, bounded retries, the intranet fallback, and which URLs are allowed."""

from __future__ import annotations

import dataclasses
import json
from email.utils import parsedate_to_datetime

import pytest
from conftest import copies_in, properties, request_and_answer
from copyimage.outbound import url_refusal
from copyimage.properties import WAITER_TAG
from copyimage.waiting import ANSWERED

from emulator.fc import Context


def test_answer_is_a_json_post_with_an_rfc1123_date(cloud, source):
    _, answer = request_and_answer(cloud, "Create", properties(source))
    (received,) = cloud.ros.answers
    assert received.accepted and received.url_kind == "public"
    assert received.headers["content-type"] == "application/json"
    assert received.headers["date"].endswith(" GMT")
    assert parsedate_to_datetime(received.headers["date"]).tzinfo is not None
    assert len(received.body) <= 4096
    assert json.loads(received.body) == answer
    assert cloud.ros.violations == []


def test_transient_failures_are_retried_a_bounded_number_of_times(cloud, source):
    cloud.ros.fail_next_answers(503, 429, 500)
    _, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer["Status"] == "SUCCESS"
    assert [a.accepted for a in cloud.ros.answers] == [False, False, False, True]


def test_retries_stop_after_the_configured_attempts(make_cloud):
    cloud = make_cloud(environment={"COPYIMAGE_RESPONSE_ATTEMPTS": "3"})
    source = cloud.seed_image("src")
    cloud.ros.fail_next_answers(503, 503, 503, 503)
    request = cloud.ros.new_request("Delete", properties(source), physical_id="m-gone00001")
    with pytest.raises(Exception, match="could not be delivered after 3 tries"):
        cloud.fc.invoke(json.dumps(request).encode(), invocation_type="Sync")
    assert len(cloud.ros.answers) == 3


def test_refused_answer_is_not_retried_and_the_copy_waits_for_the_rollback(cloud, source):
    cloud.ros.fail_next_answers(400)
    request, answer = request_and_answer(cloud, "Create", properties(source), timeout=60)
    assert answer is None
    assert len(cloud.ros.answers) == 1  # 400 means never: no retry
    (copy,) = copies_in(cloud)  # kept, unanswered, for the stack's rollback Delete to find by its tags
    assert not copy.tags[WAITER_TAG].startswith(ANSWERED)
    _, deleted = request_and_answer(cloud, "Delete", properties(source), stack_id=request["StackId"])
    assert deleted["Status"] == "SUCCESS" and copies_in(cloud) == []


def test_a_redirect_is_not_a_delivery_and_is_never_followed(cloud, source):
    cloud.ros.fail_next_answers(302)  # Location: https://elsewhere.example.com/
    _, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer["Status"] == "SUCCESS"
    assert [(a.http_status, a.url_kind, a.accepted) for a in cloud.ros.answers] == [
        (302, "public", False),
        (200, "intranet", True),  # retried, on the intranet URL
    ]


def test_unreachable_public_url_falls_back_to_the_intranet_url(make_cloud):
    cloud = make_cloud(public_url_reachable=False)
    source = cloud.seed_image("src")
    _, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer["Status"] == "SUCCESS"
    assert [a.url_kind for a in cloud.ros.answers] == ["intranet"]


def test_a_request_that_could_never_be_answered_does_nothing(make_cloud, capsys):
    cloud = make_cloud(environment={"COPYIMAGE_RESPONSE_HOSTS": "ros.example.com"})
    source = cloud.seed_image("src")
    request = cloud.ros.new_request("Create", properties(source))
    with pytest.raises(Exception, match=r"cannot be answered|no allowed response URL"):
        cloud.fc.invoke(json.dumps(request).encode(), invocation_type="Sync")
    assert cloud.ros.answers == []
    assert cloud.ecs.calls == []  # checked before any ECS call: no copy that nobody could ever own
    out = capsys.readouterr().out
    assert "response URL refused" in out and "COPYIMAGE_RESPONSE_HOSTS" in out and "127.0.0.1" in out
    assert "Signature=" not in out


@pytest.mark.parametrize(
    ("url", "hosts", "refusal"),
    [
        ("https://ros.cn-hangzhou.aliyuncs.com/cb?Signature=x", "", None),
        ("http://ros.cn-hangzhou.aliyuncs.com/cb", "", "only https"),  # http only for listed hosts
        ("https://aliyuncs.com.attacker.net/cb", "", "not under .aliyuncs.com"),
        ("https://evil-aliyuncs.com/cb", "", "not under .aliyuncs.com"),
        ("ftp://ros.aliyuncs.com/cb", "", "only https"),
        ("https://user:pw@ros.cn-hangzhou.aliyuncs.com/cb", "", "credentials"),
        ("https://ros.aliyuncs.com@evil.com/cb", "", "credentials"),
        ("https://100.100.100.200/cb", "", "IP address not listed"),
        ("https://[::1]/cb", "", "IP address not listed"),
        ("http://127.0.0.1:8080/cb", "127.0.0.1:8080", None),
        ("http://127.0.0.1:9090/cb", "127.0.0.1:8080", "IP address not listed"),
        ("http://127.0.0.1:9090/cb", "127.0.0.1", None),
        ("https://ros.internal/cb", "ros.internal", None),
        ("ftp://ros.internal/cb", "ros.internal", "neither https nor http"),
        ("https://ros.aliyuncs.com:99999/cb", "", "not a valid URL"),
        ("not a url", "", "no host"),
    ],
)
def test_response_url_allow_list(url, hosts, refusal):
    extra = frozenset(h for h in hosts.split(",") if h)
    found = url_refusal(url, extra)
    assert found is None if refusal is None else refusal in found


def test_logs_are_json_lines_with_correlation_ids_and_no_secrets(cloud, source, capsys):
    request, _answer = request_and_answer(cloud, "Create", properties(source))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("ros_request_id") == request["RequestId"]]
    assert len(mine) >= 4
    for line in mine:
        assert line["stack_id"] == request["StackId"]
        assert line["logical_resource_id"] == "CopyImage"
        assert line["request_type"] == "Create"
        assert line["fc_request_id"]
        assert line["correlation_id"] == request["RequestId"]
    text = "\n".join(json.dumps(line) for line in lines)
    secrets = [cloud.fc.function_credentials.secret, cloud.fc.function_credentials.security_token]
    secrets.append(request["ResponseURL"].split("Signature=")[1])
    for secret in secrets:
        assert secret not in text
    assert any("response_url" in line for line in mine)  # logged, without its query string


def text_of(lines: list) -> str:
    return "\n".join(json.dumps(line) for line in lines)


def test_every_invocation_starts_its_log_lines_clean(cloud, source, capsys):
    request_and_answer(cloud, "Create", properties(source))
    unanswerable = cloud.ros.new_request("Delete", properties(source))
    del unanswerable["ResponseURL"]
    with pytest.raises(Exception, match="no ResponseURL"):
        cloud.fc.invoke(json.dumps(unanswerable).encode(), invocation_type="Sync")
    malformed = cloud.ros.new_request("Delete", properties(source))
    del malformed["StackId"]
    cloud.fc.invoke(json.dumps(malformed).encode(), invocation_type="Sync")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    early = [
        line
        for line in lines
        if line["message"] in ("request cannot be answered: nothing is done for it", "malformed request")
    ]
    assert len(early) == 2
    for line in early:
        assert "ros_request_id" not in line and "stack_id" not in line  # not the previous request's ids
        assert (
            line["fc_request_id"]
            == cloud.fc.invocations[-1 if line["message"] == "malformed request" else -2].request_id
        )


def test_fc2_error_logs_do_not_leak_the_security_token(cloud, capsys):
    import logging

    from copyimage.logs import guard_sdk_logs

    guard_sdk_logs()
    fc2_record = logging.LogRecord("root", logging.ERROR, "/x/site-packages/fc2/client.py", 1, "token=%s", ("T",), None)
    other = logging.LogRecord("root", logging.ERROR, "/x/site-packages/other/mod.py", 1, "fine", (), None)
    root = logging.getLogger()
    assert not root.filter(fc2_record)
    assert root.filter(other)  # True, or the record itself on Python 3.12+


def test_a_response_url_the_http_client_rejects_is_retried_and_never_logged(cloud, source, capsys):
    request = cloud.ros.new_request("Delete", properties(source), physical_id="m-gone00001")
    request["ResponseURL"] = request["ResponseURL"] + " SECRET-PART"  # http.client refuses URLs with spaces
    request.pop("IntranetResponseURL")
    with pytest.raises(Exception, match="could not be delivered"):
        cloud.fc.invoke(json.dumps(request).encode(), invocation_type="Sync")
    assert "SECRET-PART" not in capsys.readouterr().out


@pytest.mark.parametrize("tag_refused", [False, True])
def test_each_request_logs_the_platform_facts_once(make_cloud, capsys, tag_refused):
    cloud = make_cloud(copy_seconds=600)
    cloud.ecs.tag_in_progress_refused = tag_refused
    source = cloud.seed_image("src")
    request, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer["Status"] == "SUCCESS"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    facts = [line for line in lines if line.get("message") == "platform fact"]
    assert [f["fact"] for f in facts] == ["response_url", "invocation", "ros_verification", "tag_copy_in_progress"]
    assert all(f["ros_request_id"] == request["RequestId"] for f in facts)
    url = facts[0]["response_url"]
    assert url == {"scheme": "http", "host": "127.0.0.1"}  # scheme and host only: no path, no query
    assert "Signature" not in json.dumps(facts)
    assert facts[1]["invocation_type"] == "not in the context" and "request_id" in facts[1]["context_fields"]
    # What GetStackResource showed while the provider ran (the ROS stand-in's default switches).
    assert facts[2]["resource_type"] == "Custom::CopyImage" and facts[2]["resource_status"] == "CREATE_IN_PROGRESS"
    assert facts[2]["stack_status"] == "CREATE_IN_PROGRESS"
    expected = "refused: InvalidStatus.ImageIsCreating" if tag_refused else "accepted"
    assert facts[3]["ecs_answer"] == expected


def test_the_tag_fact_is_logged_at_the_first_mark_even_when_the_copy_started_late(make_cloud, capsys):
    # ECS refuses CopyImage through more than one invocation's retries: the first hand-over has no copy to mark.
    cloud = make_cloud(copy_seconds=600)
    cloud.ecs.faults.add("CopyImage", "conflict", count=6)
    source = cloud.seed_image("src")
    _, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer["Status"] == "SUCCESS"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    facts = [line["fact"] for line in lines if line.get("message") == "platform fact"]
    assert facts.count("tag_copy_in_progress") == 1


class _BrokenContext(Context):
    """FC's context, with a field that raises when read."""

    @property
    def invocation_type(self) -> str:
        raise RuntimeError("not readable")


def test_a_context_that_cannot_be_read_does_not_keep_the_answer_from_ros(make_cloud, capsys, monkeypatch):
    cloud = make_cloud()
    real_context = cloud.fc._context

    def broken_context(request_id: str) -> Context:
        context = real_context(request_id)
        return _BrokenContext(**{f.name: getattr(context, f.name) for f in dataclasses.fields(context)})

    monkeypatch.setattr(cloud.fc, "_context", broken_context)
    source = cloud.seed_image("src")
    _, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer is not None and answer["Status"] == "SUCCESS"
    out = capsys.readouterr().out
    assert "the invocation context could not be read" in out
    assert '"fact": "invocation"' not in out and '"fact":"invocation"' not in out
