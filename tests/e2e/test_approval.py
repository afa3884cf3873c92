"""The optional human approval of a promotion, answered through the REST API.

With ``approval: manual`` (the trigger form's param, or ``ML_PROMOTION_APPROVAL``), a model
that passed the gate stays challenger and the training run waits in its Human-in-the-loop
task; the answer a person gives in the UI's Required Actions, here through the same REST
API, promotes it or keeps it challenger, and the audit log names who answered and why.
"""

from __future__ import annotations

import json
import shutil

import httpx
import pytest

from tests.conftest import AS_OF, make_settings
from tests.e2e.airflow_stack import AIRFLOW, Stack, run, run_json, standalone_stack

pytestmark = pytest.mark.e2e

TRAINING = "flights_training"
TASK = "approve_promotion"


@pytest.fixture(scope="module")
def standalone(built_data, tmp_path_factory):
    """`airflow standalone` over a built folder with no model yet: a first model passes
    the gate against no champion."""
    root = tmp_path_factory.mktemp("approval")
    data = root / "data"
    shutil.copytree(built_data, data)
    with standalone_stack(root, data, TRAINING) as stack:
        yield stack


def _awaiting(stack: Stack, run_id: str) -> dict | None:
    """The run's approval request once its task waits for an answer."""
    states = {t["task_id"]: t["state"] for t in stack.task_instances(TRAINING, run_id)}
    if states.get(TASK) != "awaiting_input":
        assert states.get("train") not in ("failed", "upstream_failed"), states
        return None
    return stack.api(f"dags/{TRAINING}/dagRuns/{run_id}/taskInstances/{TASK}/-1/hitlDetails")


def _answer(stack: Stack, run_id: str, option: str, reason: str) -> None:
    response = httpx.patch(
        f"{stack.base_url}/api/v2/dags/{TRAINING}/dagRuns/{run_id}/taskInstances/{TASK}/-1/hitlDetails",
        json={"chosen_options": [option], "params_input": {"reason": reason}},
        headers={"Authorization": f"Bearer {stack.token()}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def _train_and_wait(stack: Stack) -> tuple[str, dict]:
    conf = json.dumps({"as_of": AS_OF.isoformat(), "approval": "manual"})
    triggered = run_json(
        [AIRFLOW, "dags", "trigger", TRAINING, "--conf", conf], stack.env, logs_first=True
    )
    run_id = triggered[0]["dag_run_id"]
    request = stack.wait_for("the approval request", lambda: _awaiting(stack, run_id), 900)
    # A person answers in minutes. An answer that reaches Airflow 3.3 before the scheduler
    # has taken in the executor's report of the parked task makes the scheduler read that
    # report as a failed try, and the retry asks again. So answer once it has.
    parked = (
        "Received executor event with state success for task instance TaskInstanceKey("
        f"dag_id='{TRAINING}', task_id='{TASK}', run_id='{run_id}'"
    )
    stack.wait_for("the scheduler to see the task parked", lambda: _logged(stack, parked), 120)
    return run_id, request


def _logged(stack: Stack, text: str) -> bool:
    return stack.log_contains("standalone", text)


def test_a_promotion_waits_for_a_person_and_the_answer_is_audited(standalone):
    from ml import registry
    from ml.registry import AWAITING_APPROVAL

    settings = make_settings(standalone.data)
    run([AIRFLOW, "dags", "unpause", TRAINING], standalone.env)

    # Rejected: the model stays challenger; the audit log says who and why.
    run_id, request = _train_and_wait(standalone)
    version = registry.get_alias(settings, "challenger")
    assert registry.get_alias(settings, "champion") is None
    assert request["subject"] == f"Promote {version} to champion?"
    assert "| calibration | passed |" in request["body"]
    assert f"(/ml/models/{version})" in request["body"]
    assert request["options"] == ["Approve", "Reject"]
    assert registry.alias_changes(settings)[-1]["reason"].startswith(AWAITING_APPROVAL)
    _answer(standalone, run_id, "Reject", "the holdout is two weeks of storms")
    standalone.wait_for_runs(TRAINING, count=1, timeout=300)
    assert registry.get_alias(settings, "champion") is None
    assert registry.get_alias(settings, "challenger") == version
    last = registry.audit_log(settings)[-1]
    assert (last["event"], last["by"]) == (registry.APPROVAL, "admin")
    assert last["reason"] == (
        f"{version} rejected as champion by admin: the holdout is two weeks of storms"
    )

    # The same as-of date trains the same version again; approved, it becomes champion.
    run_id, request = _train_and_wait(standalone)
    assert request["subject"] == f"Promote {version} to champion?"
    _answer(standalone, run_id, "Approve", "checked the slices")
    standalone.wait_for_runs(TRAINING, count=2, timeout=300)
    assert registry.get_alias(settings, "champion") == version
    # the first champion is no longer also the challenger it was while it waited
    assert registry.get_alias(settings, "challenger") is None
    last = [c for c in registry.alias_changes(settings) if c["alias"] == "champion"][-1]
    assert (last["alias"], last["to"], last["by"]) == ("champion", version, "admin")
    assert last["reason"] == "approved by admin: checked the slices"
