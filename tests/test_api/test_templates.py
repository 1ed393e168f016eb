"""Workflow templates through the HTTP API, on every backend: revisions, runs by reference,
what a run keeps when its template changes, and bad input."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.support.api import submit, wait_for_run

TEMPLATE: dict[str, Any] = {
    "params": {
        "greeting": {"description": "What to say", "default": "hello"},
        "who": {"description": "To whom (required)"},
    },
    "dag": [
        {
            "name": "say",
            "task": "echo",
            "params": {"text": "{{ params.greeting }} {{ params.who }}"},
        }
    ],
}


def _edited(text: str) -> dict[str, Any]:
    body = {**TEMPLATE, "dag": [{**TEMPLATE["dag"][0], "params": {"text": text}}]}
    return body


def test_a_changed_spec_is_a_new_revision_and_the_old_ones_stay_readable(
    client: TestClient,
) -> None:
    created = client.put("/templates/greet", json=TEMPLATE)
    assert created.status_code == 201, created.text
    assert created.json()["revision"] == 1
    assert created.json()["digest"].startswith("sha256:")
    same = client.put("/templates/greet", json=TEMPLATE)
    assert same.status_code == 200
    assert same.json()["revision"] == 1  # no change, no revision
    assert same.json()["digest"] == created.json()["digest"]
    edited = client.put("/templates/greet", json=_edited("{{ params.who }}!"))
    assert edited.status_code == 200
    assert edited.json()["revision"] == 2
    assert edited.json()["digest"] != created.json()["digest"]
    assert edited.json()["revisions"] == [1, 2]
    first = client.get("/templates/greet/revisions/1").json()
    assert first["spec"]["dag"][0]["params"]["text"] == "{{ params.greeting }} {{ params.who }}"
    assert client.get("/templates/greet").json()["revision"] == 2
    names = [item["name"] for item in client.get("/templates").json()["items"]]
    assert "greet" in names
    assert client.get("/templates/greet/revisions/7").status_code == 404


def test_a_run_by_reference_keeps_its_revision_when_the_template_changes(
    client: TestClient,
) -> None:
    client.put("/templates/greet", json=TEMPLATE)
    run_id = submit(client, {"templateRef": {"name": "greet"}, "params": {"who": "ann"}})
    done = wait_for_run(client, run_id)
    assert done["status"]["phase"] == "Succeeded"
    assert done["status"]["tasks"]["say"]["outputs"] == {"text": "hello ann"}
    origin = done["origin"]
    assert origin["template"] == "greet"
    assert origin["template_revision"] == 1
    digest = client.get("/templates/greet").json()["digest"]
    assert origin["template_digest"] == digest
    client.put("/templates/greet", json=_edited("changed {{ params.who }}"))
    client.delete("/templates/greet")
    kept = client.get(f"/workflow/{run_id}").json()
    assert kept["spec"]["dag"][0]["params"]["text"] == "{{ params.greeting }} {{ params.who }}"
    assert kept["spec"]["params"] == {"greeting": "hello", "who": "ann"}
    assert kept["origin"]["template_revision"] == 1


def test_a_run_may_name_an_earlier_revision(client: TestClient) -> None:
    client.put("/templates/greet", json=TEMPLATE)
    client.put("/templates/greet", json=_edited("new {{ params.who }}"))
    old = submit(
        client,
        {
            "templateRef": {"name": "greet", "revision": 1},
            "params": {"who": "bo", "greeting": "hi"},
        },
    )
    new = submit(client, {"templateRef": {"name": "greet"}, "params": {"who": "bo"}})
    assert wait_for_run(client, old)["status"]["tasks"]["say"]["outputs"] == {"text": "hi bo"}
    newer = wait_for_run(client, new)
    assert newer["status"]["tasks"]["say"]["outputs"] == {"text": "new bo"}
    assert newer["origin"]["template_revision"] == 2


def test_bad_references_are_400s_naming_the_problem(client: TestClient) -> None:
    client.put("/templates/greet", json=TEMPLATE)
    cases = [
        ({"templateRef": {"name": "nope"}}, "Unknown template: Template nope"),
        ({"templateRef": {"name": "greet", "revision": 9}, "params": {"who": "x"}}, "revision 9"),
        ({"templateRef": {"name": "greet"}}, "Missing param for template greet: who"),
        (
            {"templateRef": {"name": "greet"}, "params": {"who": "x", "colour": "red"}},
            "Unknown param for template greet: colour",
        ),
    ]
    for body, detail in cases:
        answer = client.post("/workflow", json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert detail in answer.json()["detail"], answer.json()
    assert client.get("/workflows").json()["items"] == []  # nothing was started


def test_a_template_that_does_not_validate_is_refused_and_nothing_stored(
    client: TestClient,
) -> None:
    bad = {**TEMPLATE, "dag": [{"name": "x", "task": "no_such_task"}]}
    answer = client.put("/templates/broken", json=bad)
    assert answer.status_code == 400
    assert answer.json()["detail"] == "Template broken: Unknown task: no_such_task"
    unknown_ref = {
        **TEMPLATE,
        "dag": [{"name": "x", "task": "echo", "params": {"a": "{{ params.nope }}"}}],
    }
    answer = client.put("/templates/broken", json=unknown_ref)
    assert answer.status_code == 400
    assert "params.nope" in answer.json()["detail"]
    assert client.get("/templates/broken").status_code == 404
    assert client.put("/templates/Not_A_Name", json=TEMPLATE).status_code == 422
    assert (
        client.put("/templates/x", json={**TEMPLATE, "params": {"a": {"bogus": 1}}}).status_code
        == 422
    )


def test_deleting_a_template(client: TestClient) -> None:
    client.put("/templates/greet", json=TEMPLATE)
    assert client.delete("/templates/greet").status_code == 204
    assert client.get("/templates/greet").status_code == 404
    assert client.delete("/templates/greet").status_code == 404
    assert client.get("/templates/greet/revisions/1").status_code == 404


def test_a_null_default_is_a_default_after_storing(client: TestClient) -> None:
    optional = {**TEMPLATE, "params": {**TEMPLATE["params"], "note": {"default": None}}}
    stored = client.put("/templates/greet", json=optional).json()
    assert stored["spec"]["params"]["note"] == {"default": None}
    again = client.get("/templates/greet").json()
    assert again["digest"] == stored["digest"]
    assert again["spec"]["params"]["note"] == {"default": None}
    run_id = submit(client, {"templateRef": {"name": "greet"}, "params": {"who": "cy"}})
    assert wait_for_run(client, run_id)["spec"]["params"]["note"] is None
    same = client.put("/templates/greet", json=again["spec"])
    assert same.json()["revision"] == stored["revision"]  # read back and saved: no change


def test_a_run_by_hand_of_a_template_reading_scheduled_time(client: TestClient) -> None:
    stamped = {
        "dag": [{"name": "at", "task": "echo", "params": {"t": "{{ params.scheduledTime }}"}}]
    }
    assert client.put("/templates/stamped", json=stamped).status_code == 201
    run = wait_for_run(client, submit(client, {"templateRef": {"name": "stamped"}}))
    assert run["status"]["phase"] == "Succeeded"
    assert run["status"]["tasks"]["at"]["outputs"]["t"].endswith("Z")  # when it was submitted


def test_a_template_whose_run_key_reads_a_required_param(client: TestClient) -> None:
    deploy = {
        "params": {"env": {"description": "where to"}},
        "concurrency": [{"key": '"deploy-" + params.env', "max": 2}],
        "dag": [{"name": "go", "task": "echo", "params": {"env": "{{ params.env }}"}}],
    }
    assert client.put("/templates/deploy", json=deploy).status_code == 201
    run = wait_for_run(
        client, submit(client, {"templateRef": {"name": "deploy"}, "params": {"env": "prod"}})
    )
    assert run["status"]["phase"] == "Succeeded"
