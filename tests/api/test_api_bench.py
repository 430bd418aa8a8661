"""``manage.py bench_api`` (tools/bench/api.py) at a small size: the
benchmark works end to end on both databases, so that it cannot rot."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from customers.models import UsageRecord


@pytest.mark.django_db
def test_it_measures_pages_of_a_run_against_the_root_and_usage_against_import_usage():
    # when: a run of 25 documents (a real run: below seed_load's size), pages of 10
    out = io.StringIO()
    call_command(
        "bench_api",
        "--documents", "25",
        "--limit", "10",
        "--requests", "4",
        "--usage-records", "30",
        "--usage-rounds", "2",
        stdout=out,
        stderr=io.StringIO(),
    )  # fmt: skip
    # then
    results = json.loads(out.getvalue())
    assert results["documents"] == 25
    for position in ("first", "middle", "last"):
        assert results[f"api_documents_vs_root_{position}"] > 0
        assert results[f"api_documents_vs_root_{position}_cpu"] > 0
        assert results[f"api_{position}_p95_ms"] >= results[f"api_{position}_p50_ms"] > 0
    assert results["api_documents_vs_root"] == max(
        results[f"api_documents_vs_root_{p}"] for p in ("first", "middle", "last")
    )
    assert results["api_usage_vs_import"] > 0
    # every round's records recorded, through the API and import_usage alike
    # (the warm-up round and 2 measured ones, 30 records each way)
    assert UsageRecord.objects.count() == 3 * 2 * 30


@pytest.mark.django_db
def test_it_refuses_more_usage_records_than_one_request_takes():
    with pytest.raises(CommandError, match="--usage-records is at most 1000"):
        call_command("bench_api", "--usage-records", "1001")
