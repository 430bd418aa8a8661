"""Real processes against the test database: task-queue clusters and commands.

For tests on PostgreSQL marked ``django_db(transaction=True)``, so that what
the test writes is committed and the processes see it. The clusters use the
ORM broker (the test database) unless a test runs them on Redis
(``queue("redis")``).
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent

# The Redis of the process tests (CI runs one on its machine); each test has
# a queue name of its own in it, so parallel test processes never share one.
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BROKERS = ["orm", "redis"]


def process_env(node="test", **extra):
    db = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "billing_site.settings",
        "DEBUG": "1",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "Q_WORKERS": "1",
        "BILLING_NODE": node,
        "REDIS_URL": "",
        **{key: str(value) for key, value in extra.items()},
    }


@contextlib.contextmanager
def queue(broker):
    """The environment that puts clusters and commands on ``broker``
    ("orm" or "redis"); a Redis that cannot be reached skips the test."""
    if broker == "orm":
        yield {}
        return
    import redis

    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {TEST_REDIS_URL} is not reachable: {exc}")
    name = f"test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        yield {"REDIS_URL": TEST_REDIS_URL, "Q_CLUSTER_NAME": name}
    finally:
        for key in client.scan_iter(match=f"*{name}*"):
            client.delete(key)
        client.close()


def start_cluster(node, **extra):
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=process_env(node, **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(cluster):
    """TERM to the cluster's main process, which stops its workers in about a
    second (TERM to the whole group hangs it: each child stops on its own and
    the main process waits for them); then KILL whatever is left."""
    os.kill(cluster.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        cluster.wait(timeout=15)
    kill(cluster)


def kill(cluster):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(cluster.pid, signal.SIGKILL)
    cluster.wait()


def manage(*args, node="cli", check=True, **extra):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=process_env(node, **extra),
        capture_output=True,
        text=True,
        check=check,
    )


def wait_for(predicate, *, timeout, interval=0.2, what="the condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
