"""Every keep/replace/reuse rule for a workspace's containers, one at a time."""

from __future__ import annotations

import dataclasses

from devcontainer_builder.engine.engine import Labelled
from devcontainer_builder.state.record import State
from devcontainer_builder.up import decide

RUNNING = State(status="running", container_id="c1", remote_user="coder", config_hash="h1")


def container(
    id: str = "c1",
    role: str = "devcontainer",
    config_hash: str = "h1",
    state: str = "running",
    metadata: str = "",
    project: str = "",
) -> Labelled:
    return Labelled(id, role, config_hash, state, project, "db" if role == "service" else "", metadata)


def compose_app(**changes: str) -> Labelled:
    return container(project="ws-1", **changes)


def compose_db(**changes: str) -> Labelled:
    return container("d1", role="service", project="ws-1", **changes)


def test_the_running_container_of_the_last_successful_run_is_reused() -> None:
    plan = decide.plan_up([container()], RUNNING, "h1", rebuild=False)
    assert plan.reuse == container() and not plan.remove and not plan.remove_existing


def test_a_container_with_a_post_attach_command_goes_through_the_cli() -> None:
    with_attach = container(metadata='[{"postAttachCommand": "echo hi"}]')
    assert decide.plan_up([with_attach], RUNNING, "h1", rebuild=False).reuse is None


def test_a_stopped_container_is_not_reused_without_the_cli() -> None:
    plan = decide.plan_up([container(state="exited")], RUNNING, "h1", rebuild=False)
    assert plan.reuse is None and not plan.remove_existing and not plan.remove


def test_a_changed_config_removes_the_old_devcontainer_but_not_the_fallback() -> None:
    old = container(config_hash="h0")
    fallback = container("f1", role="fallback", config_hash="fb")
    plan = decide.plan_up([old, fallback], RUNNING, "h1", rebuild=False)
    assert plan.reuse is None
    assert [(c.id, why) for c, why in plan.remove] == [("c1", "config changed")]


def test_a_rebuild_recreates_even_an_up_to_date_container() -> None:
    plan = decide.plan_up([container()], RUNNING, "h1", rebuild=True)
    assert plan.reuse is None and plan.remove_existing


def test_an_interrupted_build_is_never_trusted() -> None:
    """A builder killed during postCreate leaves a running container that never finished its hooks."""
    killed = State(status="building", container_id="c1", remote_user="coder")
    plan = decide.plan_up([container()], killed, "h1", rebuild=False)
    assert plan.reuse is None and plan.remove_existing
    assert "interrupted" in plan.reason
    assert decide.interrupted(killed) and not decide.interrupted(RUNNING)


def test_a_container_a_failed_hook_left_is_recreated() -> None:
    failed = State(status="failed", failed_container_id="c1")
    assert decide.plan_up([container()], failed, "h1", rebuild=False).remove_existing
    assert not decide.plan_up([container()], State(status="failed"), "h1", rebuild=False).remove_existing


def test_two_containers_are_never_reused_without_the_cli() -> None:
    plan = decide.plan_up([container(), container("c2")], RUNNING, "h1", rebuild=False)
    assert plan.reuse is None


def test_a_late_hook_keeps_the_container_in_use_only() -> None:
    assert decide.keep_despite_late_hook("postStartCommand", "c1", RUNNING)
    assert decide.keep_despite_late_hook("postAttachCommand", "c1", RUNNING)
    assert not decide.keep_despite_late_hook("postCreateCommand", "c1", RUNNING)
    assert not decide.keep_despite_late_hook("postStartCommand", "c2", RUNNING), "a new container"
    assert not decide.keep_despite_late_hook("postStartCommand", "c1", State(status="degraded", container_id="c1"))


def test_after_a_run_every_other_container_is_stale() -> None:
    assert decide.stale(["a", "b", "c"], {"b"}) == ["a", "c"]
    assert decide.stale(["a", "b", "c"], {"b", "c"}) == ["a"], "the other services of its compose project stay"


def test_the_fallback_replaces_only_the_repositorys_containers() -> None:
    fallback = container("f", role="fallback")
    assert decide.before_fallback([container(), fallback]) == [container()]
    assert decide.before_fallback([compose_app(), compose_db(), fallback]) == [compose_app(), compose_db()]


def test_a_compose_devcontainer_is_reused_with_every_service_running() -> None:
    plan = decide.plan_up([compose_app(), compose_db()], RUNNING, "h1", rebuild=False)
    assert plan.reuse == compose_app()


def test_a_compose_devcontainer_with_a_stopped_service_goes_through_the_cli() -> None:
    existing = [compose_app(), compose_db(state="exited")]
    assert decide.plan_up(existing, RUNNING, "h1", rebuild=False).reuse is None
    assert decide.stopped_services(existing, "ws-1") == [compose_db(state="exited")]
    assert decide.stopped_services([compose_app(state="exited"), compose_db(state="exited")], "ws-1") == [], (
        "a stopped devcontainer is started with its project by the CLI"
    )


def test_a_changed_compose_config_removes_every_service_of_the_old_project() -> None:
    existing = [compose_app(config_hash="h0"), compose_db(config_hash="h0")]
    plan = decide.plan_up(existing, RUNNING, "h1", rebuild=False)
    assert [c.id for c, _ in plan.remove] == ["c1", "d1"]


# -- Coder's agent and the editor ahead of the restarted container's hooks ----------------------------


def ahead(found: Labelled | None, previous: State, role: str = "devcontainer", config_hash: str = "h1") -> object:
    """decide.ahead_of_hooks for the repository's devcontainer of config h1, the container the CLI is to start."""
    return decide.ahead_of_hooks(found, previous, role, config_hash)


SET_UP = State(
    status="running", container_id="c1", remote_user="coder", remote_workspace_folder="/workspaces/w", config_hash="h1"
)


def test_the_agent_starts_beside_the_hooks_of_the_container_the_last_run_set_up() -> None:
    found = decide.ahead_of_hooks(container(state="exited"), SET_UP, "devcontainer", "h1")
    assert found is not None
    assert (found.container_id, found.remote_user, found.remote_workspace_folder) == ("c1", "coder", "/workspaces/w")


def test_a_config_that_waits_for_post_start_or_post_attach_keeps_the_agent_waiting() -> None:
    for hook in ("postStartCommand", "postAttachCommand"):
        waits = container(state="exited", metadata=f'[{{"id": "f"}}, {{"waitFor": "{hook}"}}]')
        assert ahead(waits, SET_UP) is None, hook


def test_the_last_waitfor_wins_as_in_the_clis_merge() -> None:
    """A feature may say postStartCommand and the config onCreateCommand: the config's, the later entry, wins."""
    metadata = (
        '[{"waitFor": "postStartCommand"}, {"id": "f"}, {"waitFor": "onCreateCommand"}, {"postStartCommand": "x"}]'
    )
    assert decide.wait_for(metadata) == "onCreateCommand"
    assert ahead(container(state="exited", metadata=metadata), SET_UP) is not None
    assert decide.wait_for("") == ""


def test_an_unreadable_label_is_read_as_waiting_for_every_hook() -> None:
    for label in ("[{not json", "5", '{"waitFor": "onCreateCommand"}', "null", '"text"'):
        assert ahead(container(state="exited", metadata=label), SET_UP) is None, label
    assert decide.wait_for('[1, "x", {"waitFor": 7}, {"waitFor": "onCreateCommand"}]') == "onCreateCommand"
    deep = "[" * 100_000 + "]" * 100_000  # a base image's label: RecursionError, not ValueError
    assert decide.wait_for(deep) == "unreadable"
    assert decide.wait_for('[{"waitFor": "' + "x" * decide.MAX_METADATA + '"}]') == "unreadable"


def test_an_empty_waitfor_does_not_override_an_earlier_one() -> None:
    assert decide.wait_for('[{"waitFor": "postStartCommand"}, {"waitFor": ""}]') == "postStartCommand"


def test_nothing_starts_ahead_in_a_container_the_last_run_did_not_set_up() -> None:
    cases = {
        "another container": (container("c2", state="exited"), SET_UP),
        "already running: the CLI starts nothing": (container(), SET_UP),
        "a compose service": (container(role="service", state="exited"), SET_UP),
        "the last run failed": (container(state="exited"), dataclasses.replace(SET_UP, status="failed")),
        "the last run was interrupted": (container(state="exited"), dataclasses.replace(SET_UP, status="building")),
        "no user known": (container(state="exited"), dataclasses.replace(SET_UP, remote_user="")),
        "no folder known": (container(state="exited"), dataclasses.replace(SET_UP, remote_workspace_folder="")),
        "no container": (None, SET_UP),
        "a compose project's devcontainer": (container(state="exited", project="ws-1"), SET_UP),
        "the last run's fallback, when the repository's devcontainer is started": (
            container(role="fallback", config_hash="fb", state="exited"),
            dataclasses.replace(SET_UP, status="degraded"),
        ),
    }
    for why, (found, previous) in cases.items():
        assert ahead(found, previous) is None, why


def test_the_fallback_restarted_by_keep_alive_gets_its_agent_ahead_too() -> None:
    degraded = dataclasses.replace(SET_UP, status="degraded")
    fallback = container(role="fallback", config_hash="fb", state="exited")
    assert ahead(fallback, degraded, "fallback", "fb") is not None
