"""`manage.py bench_billrun` (tools/bench/billrun.py) at small sizes: the
benchmark works end to end, and with `--usage-records N` it times the same
run without and with N records imported by `import_usage`."""

import datetime
import io
import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from tools.usage import benchmark_usage_csv, billed_span, quantity_total

D = datetime.date


# --- the usage file ----------------------------------------------------------------


def usage_file(charges, records):
    out = io.StringIO()
    used = benchmark_usage_csv(out, charges=charges, records=records)
    header, *lines = out.getvalue().splitlines()
    return used, header, [line.split(",") for line in lines]


CHARGES = [
    ("C00000001", D(2026, 1, 15), D(2026, 3, 1)),
    ("C00000002", D(2026, 2, 20), D(2026, 2, 25)),
    ("C00000003", D(2026, 1, 1), D(2026, 2, 1)),
]


def test_the_usage_file_has_n_records_with_unique_ids_on_the_charges_billed_days():
    used, header, rows = usage_file(CHARGES, 1000)

    assert header == "id,charge,date,quantity"
    assert used == 3
    assert len(rows) == 1000
    assert len({row[0] for row in rows}) == 1000
    spans = {number: (first, end) for number, first, end in CHARGES}
    for _, charge, day, _ in rows:
        first, end = spans[charge]
        assert first <= D.fromisoformat(day) < end


def test_the_usage_file_spreads_records_evenly_over_charges_and_their_days():
    _, _, rows = usage_file(CHARGES, 3 * 5 * 60)

    per_charge = Counter(charge for _, charge, _, _ in rows)
    assert set(per_charge.values()) == {300}
    days = Counter(day for _, charge, day, _ in rows if charge == "C00000002")
    assert len(days) == 5 and set(days.values()) == {60}


def test_the_usage_files_quantities_add_up_to_quantity_total():
    for records in (1, 996, 997, 2500):
        _, _, rows = usage_file(CHARGES, records)

        assert sum(Decimal(row[3]) for row in rows) == quantity_total(records)


class LargestWrite(io.StringIO):
    largest = 0

    def write(self, text):
        self.largest = max(self.largest, len(text))
        return super().write(text)


def test_the_usage_file_is_written_a_round_of_charges_at_a_time():
    out = LargestWrite()

    benchmark_usage_csv(out, charges=CHARGES, records=30_000)

    assert len(out.getvalue()) > 100 * out.largest  # never the file in one piece
    assert out.largest < 3 * 50


def test_a_usage_file_over_no_charge_is_the_header_alone():
    assert usage_file([], 10) == (0, "id,charge,date,quantity", [])


@pytest.mark.parametrize(
    ("start", "bill_cycle_day", "span"),
    [
        (D(2026, 1, 15), 1, (D(2026, 1, 15), D(2026, 3, 1))),
        (D(2026, 1, 20), 25, (D(2026, 1, 20), D(2026, 2, 25))),
        (D(2026, 2, 28), 28, None),  # its first month ends after the target date
    ],
)
def test_the_billed_span_is_the_pieces_a_run_bills_in_arrears(start, bill_cycle_day, span):
    target = D(2026, 3, 1)
    assert billed_span(
        period="month", bill_cycle_day=bill_cycle_day, start=start, target=target
    ) == (span)


# --- the benchmark -------------------------------------------------------------------


@pytest.mark.django_db
def test_it_refuses_a_usage_record_count_below_1():
    with pytest.raises(CommandError, match="--usage-records must be at least 1"):
        call_command("bench_billrun", "--accounts", "10", "--usage-records", "0")


@pytest.mark.slow
def test_it_times_the_run_without_and_with_usage_records_on_sqlite(tmp_path):
    # given an empty database in a file, which the benchmark's cluster shares
    db = tmp_path / "db.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "billing_site.settings",
        "DATABASE_URL": f"sqlite:///{db}",
        "DEBUG": "1",
    }

    def manage(*argv):
        return subprocess.run(
            [sys.executable, "manage.py", *argv],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    assert manage("migrate", "-v", "0").returncode == 0

    # when
    bench = manage("bench_billrun", "--accounts", "30", "--usage-records", "2500", "--json")

    # then
    assert bench.returncode == 0, bench.stderr
    *table, last = bench.stdout.strip().splitlines()
    results = json.loads(last)
    assert results["usage_charges"] == 30  # every other one of 60 subscriptions
    assert 0 < results["usage_charges_with_records"] <= 30
    assert results["usage_records"] == 2500
    # (each figure is rounded from the unrounded times)
    assert results["usage_records_per_s"] == pytest.approx(
        2500 / results["usage_import_s"], rel=0.05
    )
    # the same run twice: the same items, the usage pieces rated at 0 the first time
    assert results["items"] == results["items_without_usage"]
    assert results["generate_usage_vs_without"] == pytest.approx(
        results["generate_s"] / results["generate_without_usage_s"], abs=0.02
    )
    assert results["worker_peak_rss_without_usage_mb"] > 0
    # the Review tab's pages, side by side with a run's page with no documents
    assert results["review_write_s"] >= 0
    assert results["review_lines"] > 0
    assert results["review_page_vs_empty"] > 0 and results["review_last_vs_empty"] > 0
    assert results["review_worst_vs_empty"] >= results["review_page_vs_empty"]
    labels = [line.split("  ")[0] for line in table]
    assert {"import_usage", "generate, no usage records", "generate, usage ÷ no usage"} <= set(
        labels
    )
    with sqlite3.connect(db) as database:
        runs = dict(database.execute("SELECT number, status FROM billruns_billrun"))
        records = database.execute("SELECT count(*) FROM customers_usagerecord").fetchone()[0]
    assert "BR-00000001" not in runs  # the run without usage, deleted
    assert runs["BR-00000002"] == "Posted"
    assert records == 2500


@pytest.mark.parametrize("fraction", ["0", "1.5", "-0.1"])
def test_it_refuses_a_changes_fraction_outside_0_to_1(fraction):
    with pytest.raises(CommandError, match="--changes must be a fraction above 0 and at most 1"):
        call_command("bench_billrun", "--accounts", "10", "--changes", fraction)


def test_it_measures_changes_apart_from_usage():
    with pytest.raises(CommandError, match="--changes and --usage-records are measured apart"):
        call_command(
            "bench_billrun", "--accounts", "10", "--changes", "0.1", "--usage-records", "5"
        )


@pytest.mark.slow
def test_it_times_the_next_run_without_and_with_changes_on_sqlite(tmp_path):
    # given an empty database in a file, which the benchmark's cluster shares
    db = tmp_path / "db.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "billing_site.settings",
        "DATABASE_URL": f"sqlite:///{db}",
        "DEBUG": "1",
    }

    def manage(*argv):
        return subprocess.run(
            [sys.executable, "manage.py", *argv],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    assert manage("migrate", "-v", "0").returncode == 0

    # when
    bench = manage("bench_billrun", "--accounts", "100", "--changes", "0.1", "--json")

    # then
    assert bench.returncode == 0, bench.stderr
    *table, last = bench.stdout.strip().splitlines()
    results = json.loads(last)
    # every 10th of the 200 subscriptions with a billed recurring charge (those of
    # the accounts failing by design have none): price changes and removals alternately
    changed = results["changed_subscriptions"]
    assert 17 <= changed <= 20
    assert results["price_changes"] + results["removals"] == changed
    assert abs(results["price_changes"] - results["removals"]) <= 1
    # the changes reverse and rebill what the first run billed: more items
    assert results["items"] > results["items_without_changes"]
    assert results["target_date"] == "2026-04-01"
    assert results["generate_changes_vs_without"] == pytest.approx(
        results["generate_s"] / results["generate_without_changes_s"], abs=0.02
    )
    labels = [line.split("  ")[0] for line in table]
    assert {"generate, no changes", "changes", "generate, changes ÷ no changes"} <= set(labels)
    with sqlite3.connect(db) as database:
        runs = dict(database.execute("SELECT number, status FROM billruns_billrun"))
        changes = database.execute("SELECT count(*) FROM customers_subscriptionchange").fetchone()
        adjustments = database.execute(
            "SELECT count(*) FROM invoices_documentitem WHERE adjusts_id IS NOT NULL"
        ).fetchone()
    assert runs["BR-00000001"] == "Posted"
    assert "BR-00000002" not in runs  # the next run without changes, deleted
    assert runs["BR-00000003"] == "Posted"
    assert changes == (changed,)
    assert adjustments[0] > 0
