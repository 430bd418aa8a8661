"""Real processes against the test database: task-queue clusters and commands.

For tests on PostgreSQL marked ``django_db(transaction=True)``, so that what
the test writes is committed and the processes see it.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


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
    """TERM, then KILL: a busy cluster can hang on TERM."""
    os.killpg(cluster.pid, signal.SIGTERM)
    try:
        cluster.wait(timeout=15)
    except subprocess.TimeoutExpired:
        kill(cluster)


def kill(cluster):
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
