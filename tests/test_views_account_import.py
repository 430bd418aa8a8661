"""/billing/accounts/import/ (INTERFACES.md, "Pages"): an import_accounts
file uploaded there is imported by the task queue, with the same checks and
messages as the command (the mechanism is the usage page's: core.uploads)."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from core.uploads import UploadStatus
from customers.account_uploads import account_upload_import
from customers.models import Account, AccountUpload, AccountUploadPart, Charge, Subscription
from customers.services import tax_rate_set

pytestmark = pytest.mark.django_db

PAGE = "/billing/accounts/import/"


def accounts_file(*accounts):
    return json.dumps({"accounts": list(accounts)})


def account(number, **fields):
    return {
        "number": number,
        "name": f"Customer {number}",
        "currency": "USD",
        "bill_cycle_day": 1,
        "subscriptions": [
            {
                "number": f"S-{number}",
                "start_date": "2026-01-15",
                "charges": [
                    {
                        "name": "Pro plan",
                        "type": "recurring",
                        "amount": "100.00",
                        "period": "month",
                        "start_date": "2026-01-15",
                    }
                ],
            }
        ],
        **fields,
    }


def upload_file(client, content, name="accounts.json"):
    if isinstance(content, str):
        content = content.encode("utf-8")
    return client.post(PAGE, {"file": SimpleUploadedFile(name, content, "application/json")})


def test_the_accounts_page_links_to_the_import(client, clerk):
    client.force_login(clerk)
    assert f'href="{PAGE}"' in client.get("/billing/accounts/").content.decode()


def test_an_uploaded_file_is_imported_by_the_task_queue(
    client, clerk, django_capture_on_commit_callbacks
):
    client.force_login(clerk)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = upload_file(client, accounts_file(account("A-1"), account("A-2")))

    assert len(callbacks) == 1
    upload = AccountUpload.objects.get()
    assert response.url == f"/billing/accounts/import/{upload.pk}/"
    assert upload.status == UploadStatus.IMPORTED
    assert upload.summary == "imported 2 accounts, 2 subscriptions, 2 charges"
    assert upload.uploaded_by == clerk
    assert set(Account.objects.values_list("number", flat=True)) == {"A-1", "A-2"}
    assert not AccountUploadPart.objects.exists()
    html = client.get(response.url).content.decode()
    assert "imported 2 accounts, 2 subscriptions, 2 charges" in html
    assert "hx-trigger" not in html


def test_a_refused_file_lists_its_problems_by_json_path(
    client, clerk, django_capture_on_commit_callbacks
):
    client.force_login(clerk)

    with django_capture_on_commit_callbacks(execute=True):
        response = upload_file(
            client, accounts_file(account("A-1"), account("A-2", bill_cycle_day=40))
        )

    upload = AccountUpload.objects.get()
    assert upload.status == UploadStatus.REFUSED
    assert len(upload.problems) == 1
    assert upload.problems[0].startswith("accounts[1].bill_cycle_day: ")
    assert not Account.objects.exists() and not Subscription.objects.exists()
    assert not Charge.objects.exists()
    html = client.get(response.url).content.decode()
    assert "Refused: nothing was imported." in html
    assert "accounts[1].bill_cycle_day: " in html


def test_a_file_that_is_not_json_is_refused_with_the_command_message(
    client, clerk, django_capture_on_commit_callbacks
):
    client.force_login(clerk)

    with django_capture_on_commit_callbacks(execute=True):
        upload_file(client, b"\xff\xfenot json")

    upload = AccountUpload.objects.get()
    assert upload.status == UploadStatus.REFUSED
    assert upload.problems and "UTF-8" in upload.problems[0]
    assert not Account.objects.exists()


def test_the_task_run_twice_imports_once(client, clerk, django_capture_on_commit_callbacks):
    # numbers left to the import: a second import would make two more accounts
    client.force_login(clerk)
    without_numbers = {k: v for k, v in account("A-1").items() if k != "number"}
    without_numbers["subscriptions"][0].pop("number")
    with django_capture_on_commit_callbacks(execute=True):
        upload_file(client, accounts_file(without_numbers))
    upload = AccountUpload.objects.get()

    account_upload_import(upload_id=upload.pk)

    upload.refresh_from_db()
    assert (upload.status, upload.attempts) == (UploadStatus.IMPORTED, 1)
    assert Account.objects.count() == 1


def test_a_file_over_the_limit_is_refused_on_the_page(
    client, clerk, settings, django_capture_on_commit_callbacks
):
    settings.IMPORT_MAX_BYTES = 10
    client.force_login(clerk)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = upload_file(client, accounts_file(account("A-1")))

    assert response.status_code == 400
    assert "manage.py import_accounts" in response.content.decode()
    assert callbacks == [] and not AccountUpload.objects.exists()


def test_a_viewer_sees_the_uploads_but_cannot_upload(client, viewer, clerk):
    upload = AccountUpload.objects.create(file_name="a.json", size=2, uploaded_by=clerk)
    client.force_login(viewer)

    page = client.get(PAGE).content.decode()
    assert 'data-testid="account-upload-form"' not in page and "a.json" in page
    assert client.get(f"{PAGE}{upload.pk}/").status_code == 200
    assert 'hx-trigger="every 2s"' in client.get(f"{PAGE}{upload.pk}/status/").content.decode()
    assert upload_file(client, accounts_file(account("A-1"))).status_code == 403
    assert not Account.objects.exists()


def test_both_roles_view_and_only_clerks_upload(clerk, viewer):
    assert clerk.has_perm("customers.view_accountupload")
    assert viewer.has_perm("customers.view_accountupload")
    assert clerk.has_perm("customers.add_accountupload")
    assert not viewer.has_perm("customers.add_accountupload")


def test_an_uploaded_file_takes_tax_codes_and_taxable_as_the_command(
    client, clerk, django_capture_on_commit_callbacks
):
    # given one rate; a file whose second account names a code no rate has
    tax_rate_set("VAT20", "20")
    client.force_login(clerk)
    taxed = account("A-1", tax_codes=["VAT20"])
    taxed["subscriptions"][0]["charges"][0]["taxable"] = False

    # when
    with django_capture_on_commit_callbacks(execute=True):
        upload_file(client, accounts_file(taxed, account("A-2", tax_codes=["XX"])))

    # then refused at its path, nothing imported
    upload = AccountUpload.objects.get()
    assert upload.status == UploadStatus.REFUSED
    assert upload.problems == [
        "accounts[1].tax_codes[0]: no tax rate has the code XX (tax_rate --list shows them)"
    ]
    assert not Account.objects.exists()

    # when the file is fixed
    with django_capture_on_commit_callbacks(execute=True):
        upload_file(client, accounts_file(taxed, account("A-2")))

    # then
    imported = Account.objects.get(number="A-1")
    assert list(imported.tax_codes.values_list("tax_rate__code", flat=True)) == ["VAT20"]
    assert Charge.objects.get(subscription__account=imported).taxable is False
    assert Charge.objects.get(subscription__account__number="A-2").taxable is True
