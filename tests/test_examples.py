"""The worked examples of the billing rules (tests/data/*.runs.json), replayed
step by step through the real commands: the rules, executable."""

import io
import json
from collections import Counter
from pathlib import Path

import pytest
from django.core.management import call_command

DATA = Path(__file__).parent / "data"
BOOKS = sorted(p.name.removesuffix(".runs.json") for p in DATA.glob("*.runs.json"))
# The second release's books (tests/data/second/README.md): tax rates first,
# then the book without its ``tax_rates`` key, usage imports and changes.
SECOND = DATA / "second"
SECOND_BOOKS = sorted(p.name.removesuffix(".runs.json") for p in SECOND.glob("*.runs.json"))


def run_command(*argv):
    out = io.StringIO()
    call_command(*argv, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def comparable_document(document, *, second=False):
    if second:
        return {
            **comparable_document(document),
            "subtotal": document["subtotal"],
            "taxes": [(t["code"], t["amount"]) for t in document["taxes"]],
            "items": Counter(
                (
                    i["kind"],
                    i["charge_number"],
                    i["subscription"],
                    i["charge"],
                    i["service_start"],
                    i["service_end"],
                    i["amount"],
                    i["quantity"],
                )
                for i in document["items"]
            ),
        }
    return {
        "type": document["type"],
        "account": document["account"],
        "currency": document["currency"],
        "amount": document["amount"],
        "invoice_date": document["invoice_date"],
        "due_date": document["due_date"],
        "items": Counter(
            (i["subscription"], i["charge"], i["service_start"], i["service_end"], i["amount"])
            for i in document["items"]
        ),
    }


def assert_run_matches(shown, expect, step, *, second=False):
    assert shown["accounts_processed"] == expect["accounts_processed"], step
    totals = {c: t for c, t in shown["totals"].items() if float(t) != 0}
    assert totals == expect["totals"], step
    assert Counter((f["account"], f["subscription"]) for f in shown["failures"]) == Counter(
        (f["account"], f["subscription"]) for f in expect["failures"]
    ), step
    for failure in expect["failures"]:
        if failure["subscription"] is None:
            reasons = [
                f["reason"]
                for f in shown["failures"]
                if f["account"] == failure["account"] and f["subscription"] is None
            ]
            assert reasons == ["Bill-to contact is missing"], step
    got = sorted(
        (comparable_document(d, second=second) for d in shown["documents"]),
        key=lambda d: d["account"],
    )
    want = sorted(
        (comparable_document(d, second=second) for d in expect["documents"]),
        key=lambda d: d["account"],
    )
    assert [d["account"] for d in got] == [d["account"] for d in want], step
    for got_doc, want_doc in zip(got, want, strict=True):
        assert got_doc == want_doc, f"{step}: {want_doc['account']}"


@pytest.mark.django_db
@pytest.mark.parametrize("book", BOOKS)
def test_example_book_replays_exactly(book, superuser):
    # given the book of accounts
    run_command("import_accounts", str(DATA / f"{book}.book.json"))
    last = None
    steps = json.loads((DATA / f"{book}.runs.json").read_text())
    for index, step in enumerate(steps):
        argv = [last if arg == "$LAST" else arg for arg in step["do"]]
        # when each step runs
        output = run_command(*argv)
        if argv[:2] == ["billrun", "create"]:
            last = output.splitlines()[0].strip()
        # then each run says exactly what the book expects
        if "expect" in step:
            shown = json.loads(run_command("billrun", "show", last, "--json", "--documents"))
            assert shown["status"] == "Completed"
            assert_run_matches(shown, step["expect"], f"{book} step {index}: {' '.join(argv)}")


@pytest.mark.django_db
@pytest.mark.parametrize("book", SECOND_BOOKS)
def test_second_release_book_replays_exactly(book, superuser, tmp_path):
    steps = json.loads((SECOND / f"{book}.runs.json").read_text())
    # given the tax rates, which come first, then the book without them
    while steps and steps[0].get("do", [None])[0] == "tax_rate":
        run_command(*steps.pop(0)["do"])
    accounts = tmp_path / "book.json"
    book_data = json.loads((SECOND / f"{book}.book.json").read_text())
    accounts.write_text(json.dumps({"accounts": book_data["accounts"]}))
    run_command("import_accounts", str(accounts))
    last = None
    for index, step in enumerate(steps):
        if "import_usage" in step:
            usage = tmp_path / f"usage-{index}.csv"
            usage.write_text(
                "id,charge,date,quantity\n"
                + "".join(
                    f"{r['id']},{r['charge']},{r['date']},{r['quantity']}\n"
                    for r in step["import_usage"]
                )
            )
            output = run_command("import_usage", str(usage))
            assert output.strip() == step["expect_printed"], f"{book} step {index}"
            continue
        if "amend" in step:
            changes = tmp_path / f"changes-{index}.json"
            changes.write_text(json.dumps({"changes": step["amend"]}))
            run_command("amend", str(changes))
            continue
        argv = [last if arg == "$LAST" else arg for arg in step["do"]]
        # when each step runs
        output = run_command(*argv)
        if argv[:2] == ["billrun", "create"]:
            last = output.splitlines()[0].strip()
        # then each run says exactly what the book expects, taxes included
        if "expect" in step:
            shown = json.loads(run_command("billrun", "show", last, "--json", "--documents"))
            assert shown["status"] == "Completed"
            assert_run_matches(
                shown, step["expect"], f"{book} step {index}: {' '.join(argv)}", second=True
            )
