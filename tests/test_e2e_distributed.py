"""End to end: 2 seeders, 1 controller and 4 workers as separate processes on a skewed tree;
a seeder, the controller and a worker are killed with SIGKILL mid-run and restarted; every
file must land byte-identical and the counters must be exact."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from scripts import gentree
from tests import e2e

pytestmark = pytest.mark.slow

TREE_FILES = 5000


@pytest.fixture(scope="module")
def skewed_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("src") / "tree"
    gentree.generate(root, "skewed", seed=7, files=TREE_FILES)
    # Entries that are not regular files: listed as failures, never copied.
    os.symlink("file_that_is_not_there", root / "dangling link")
    os.symlink(".", root / "loop")
    os.mkfifo(root / "a fifo")
    return root


def _run_with_kills(tree: Path, job: str, target: str, env: dict[str, str], log_dir: Path,
                    order: str = "dfs", workers: int = 4, kill_worker_for_good: bool = False) -> list[e2e.Role]:
    seeder_a = e2e.Role("seeder-a", ["seed", str(tree), "--job", job, "--target", target, "--order", order], env, log_dir)
    seeder_b = e2e.Role("seeder-b", ["seed", "--job", job], env, log_dir)
    controller = e2e.Role("controller", ["control", "--job", job], env, log_dir)
    crew = [e2e.Role(f"worker-{i}", ["work", "--job", job], env, log_dir) for i in range(workers)]

    seeder_a.start()
    e2e.poll(lambda: e2e.registered(job, env), 60, "the job to be registered")
    seeder_b.start()
    controller.start()
    for w in crew:
        w.start()

    e2e.poll(lambda: e2e.status(job, env)["files_done"] >= TREE_FILES // 10, 180, "a tenth of the files")
    seeder = seeder_a if seeder_a.alive() else seeder_b
    was_seeding = e2e.status(job, env)["state"] == "seeding"
    for role in (seeder, controller, crew[0]):
        if role.alive():
            role.kill()
    if not kill_worker_for_good:
        seeder.start()
        controller.start()
        crew[0].start()
    else:
        seeder.start()
        controller.start()

    deadline = time.monotonic() + 300
    everyone = [seeder_a, seeder_b, controller, *(crew if not kill_worker_for_good else crew[1:])]
    for role in everyone:
        code = role.wait(deadline)
        assert code == 0, f"{role.name} exited {code}:\n{role.output()[-3000:]}"
    print(f"killed mid-run while {'seeding' if was_seeding else 'copying'}")
    if not kill_worker_for_good:
        # the restarted worker took its dead predecessor's slot back: still four, still level
        costs = [w["assigned_cost"] for w in e2e.status(job, env)["workers"]]
        assert len(costs) == workers, costs
        ratio = max(costs) / (sum(costs) / len(costs))
        print(f"assigned cost max/mean after the kills = {ratio:.4f}")
        assert ratio <= 1.10
    return everyone


def _assert_exact(job: str, env: dict[str, str], tree: Path, landed: dict,
                  cannot_hold: Callable[[str], bool] = lambda path: False) -> None:
    found = e2e.source_digest(tree)
    assert len(found) >= TREE_FILES
    refused = {p for p in found if cannot_hold(p)}
    expected = {p: v for p, v in found.items() if p not in refused}
    missing = set(expected) - set(landed)
    extra = set(landed) - set(expected)
    assert not missing, f"{len(missing)} files missing at the target, e.g. {sorted(missing)[:5]}"
    assert not extra, f"unexpected objects at the target: {sorted(extra)[:5]}"
    wrong = [p for p in expected if expected[p] != landed[p]]
    assert not wrong, f"{len(wrong)} files differ, e.g. {wrong[:5]}"

    doc = e2e.status(job, env)
    assert doc["state"] == "done"
    assert doc["files_total"] == len(found)
    assert doc["files_done"] == len(expected)
    assert doc["files_skipped"] == 0
    assert doc["files_failed"] == len(refused)
    assert doc["bytes_done"] == sum(size for size, _ in expected.values())
    assert doc["files_done"] + doc["files_skipped"] + doc["files_failed"] == doc["files_total"]
    assert sum(w["files_done"] for w in doc["workers"]) == len(expected)

    reasons = {f["path"]: f["reason"] for f in e2e.failures(job, env)["failures"]}
    for path in refused:
        assert path in reasons, f"{path} was neither copied nor listed as a failure"
    assert "dangling link" in reasons and "symbolic link" in reasons["dangling link"]
    assert "loop" in reasons
    assert "a fifo" in reasons and "FIFO" in reasons["a fifo"]


def test_blob_target_survives_kills_of_seeder_controller_and_worker(skewed_tree, redis_url, azurite, unique, tmp_path):
    env = e2e.base_env(COPIER_REDIS_URL=redis_url, COPIER_QUEUE_CONNECTION_STRING=azurite.connection_string,
                       AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string, COPIER_QUEUES="azure")
    target = f"{azurite.blob_endpoint}/{unique}/night ly"
    _run_with_kills(skewed_tree, unique, target, env, tmp_path)
    _assert_exact(unique, env, skewed_tree, e2e.blob_digest(azurite.connection_string, unique, "night ly"))


def test_local_target_survives_kills_with_redis_queues_in_bfs_order(skewed_tree, redis_url, unique, tmp_path):
    env = e2e.base_env(COPIER_REDIS_URL=redis_url, COPIER_QUEUES="redis")
    dest = tmp_path / "dest"
    _run_with_kills(skewed_tree, unique, str(dest), env, tmp_path, order="bfs")
    _assert_exact(unique, env, skewed_tree, e2e.local_digest(dest))
    for empty in gentree.empty_dirs(skewed_tree):
        assert (dest / empty).is_dir(), f"empty directory {empty} was not created"


def test_work_of_a_worker_that_never_returns_is_finished_by_the_others(skewed_tree, redis_url, unique, tmp_path):
    env = e2e.base_env(COPIER_REDIS_URL=redis_url, COPIER_QUEUES="redis")
    dest = tmp_path / "dest"
    _run_with_kills(skewed_tree, unique, str(dest), env, tmp_path, workers=3, kill_worker_for_good=True)
    _assert_exact(unique, env, skewed_tree, e2e.local_digest(dest))
    doc = e2e.status(unique, env)
    dead = [w for w in doc["workers"] if not w["live"]]
    assert dead, "the killed worker's slot should show an expired lease"


def test_assigned_cost_is_level_across_four_workers_on_a_lopsided_tree(skewed_tree, redis_url, unique, tmp_path):
    env = e2e.base_env(COPIER_REDIS_URL=redis_url, COPIER_QUEUES="redis")
    dest = tmp_path / "dest"
    roles = [e2e.Role("seeder", ["seed", str(skewed_tree), "--job", unique, "--target", str(dest)], env, tmp_path)]
    roles[0].start()
    e2e.poll(lambda: e2e.registered(unique, env), 60, "the job to be registered")
    roles += [e2e.Role(f"worker-{i}", ["work", "--job", unique], env, tmp_path).start() for i in range(4)]
    # Balance is the controller's doing among the workers it sees: let all four take their
    # slots first, so a worker slowed by a loaded machine is not a late joiner.
    e2e.poll(lambda: sum(w["live"] for w in e2e.status(unique, env)["workers"]) == 4, 60, "four live workers")
    roles += [e2e.Role("controller", ["control", "--job", unique], env, tmp_path).start()]
    deadline = time.monotonic() + 300
    for role in roles:
        assert role.wait(deadline) == 0, role.output()[-3000:]
    doc = e2e.status(unique, env)
    costs = [w["assigned_cost"] for w in doc["workers"]]
    assert len(costs) == 4
    ratio = max(costs) / (sum(costs) / len(costs))
    print(f"assigned cost max/mean = {ratio:.4f}")
    assert ratio <= 1.10
    assert doc["files_done"] == doc["files_total"]


@pytest.fixture(scope="module")
def files_emulator():
    from tests.files_servers import start_files_emulator

    emulator = start_files_emulator()
    yield emulator
    emulator.stop()


def _files_cannot_hold(path: str) -> bool:
    """Azure Files refuses these characters and a trailing dot or space on a component."""
    return any(c in path for c in '"\\:|<>*?') or any(part.endswith((".", " ")) for part in path.split("/"))


@pytest.mark.parametrize("order", ["dfs", "bfs"])
def test_files_target_survives_kills_in_either_order(order, skewed_tree, redis_url, files_emulator, unique, tmp_path):
    env = e2e.base_env(COPIER_REDIS_URL=redis_url, COPIER_QUEUES="redis", COPIER_LOG_LEVEL="info",
                       AZURE_STORAGE_CONNECTION_STRING=files_emulator.connection_string)
    target = f"files+{files_emulator.endpoint}/{unique}/night ly"
    roles = _run_with_kills(skewed_tree, unique, target, env, tmp_path, order=order)
    _assert_exact(unique, env, skewed_tree, e2e.files_digest(files_emulator.connection_string, unique, "night ly"),
                  cannot_hold=_files_cannot_hold)
    folders = e2e.files_dirs(files_emulator.connection_string, unique, "night ly")
    for empty in gentree.empty_dirs(skewed_tree):
        assert empty in folders, f"empty directory {empty} was not created"
    calls = sum(e2e.dir_calls_from_logs(r.output()) for r in roles if r.name.startswith("worker"))
    print(f"{order}: {calls} directory create calls by the workers for {len(folders)} folders "
          f"({calls / len(folders):.2f} per folder)")
