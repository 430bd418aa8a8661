import pytest
from django.contrib.auth.models import Group

pytestmark = pytest.mark.django_db

CLERK_ACTIONS = [
    "billruns.add_billrun",
    "billruns.post_billrun",
    "billruns.cancel_billrun",
    "billruns.retry_billrun",
    "billruns.email_billrun",
    "billruns.delete_billrun",
    "billruns.add_schedule",
    "billruns.change_schedule",
    "invoices.add_payment",
    "invoices.add_creditapplication",
    "invoices.post_document",
]


def codenames(group_name):
    group = Group.objects.get(name=group_name)
    return {
        f"{app_label}.{codename}"
        for app_label, codename in group.permissions.values_list(
            "content_type__app_label", "codename"
        )
    }


def test_both_roles_exist_after_migrate():
    assert set(Group.objects.values_list("name", flat=True)) >= {
        "Billing clerk",
        "Billing viewer",
    }


def test_viewer_can_only_view():
    perms = codenames("Billing viewer")

    assert perms
    assert all(perm.split(".")[1].startswith("view_") for perm in perms)
    assert {"billruns.view_billrun", "invoices.view_invoice", "customers.view_account"} <= perms


def test_clerk_can_view_everything_the_viewer_can():
    assert codenames("Billing viewer") <= codenames("Billing clerk")


@pytest.mark.parametrize("perm", CLERK_ACTIONS)
def test_clerk_holds_the_permission_for_each_action(clerk, perm):
    assert clerk.has_perm(perm)


@pytest.mark.parametrize("perm", CLERK_ACTIONS)
def test_viewer_holds_none_of_the_action_permissions(viewer, perm):
    assert not viewer.has_perm(perm)


def test_clerk_may_change_an_account_for_its_bill_to_contact(clerk, viewer):
    # customers 0005_clerks_change_account: the account page's contact form.
    assert clerk.has_perm("customers.change_account")
    assert not viewer.has_perm("customers.change_account")


def test_only_a_clerk_may_make_a_subscription_change_and_both_may_view_them(clerk, viewer):
    # customers 0013_roles_subscription_changes: the subscription page's forms.
    assert clerk.has_perm("customers.add_subscriptionchange")
    assert not viewer.has_perm("customers.add_subscriptionchange")
    for user in (clerk, viewer):
        assert user.has_perm("customers.view_subscriptionchange")
        assert user.has_perm("customers.view_chargeprice")
    for user in (clerk, viewer):  # a change is never edited nor deleted
        assert not user.has_perm("customers.change_subscriptionchange")
        assert not user.has_perm("customers.delete_subscriptionchange")


def test_clerk_cannot_edit_settings_or_documents(clerk):
    assert not clerk.has_perm("invoices.change_tenantsettings")
    assert not clerk.has_perm("invoices.change_document")


# Models made after the roles (notifications 0003_roles_new_models).
NEWER_VIEWS = [
    "invoices.view_documentdelivery",
    "notifications.view_emaildelivery",
    "notifications.view_runnotification",
]


@pytest.mark.parametrize("perm", NEWER_VIEWS)
def test_both_roles_may_view_the_newer_models(clerk, viewer, perm):
    assert clerk.has_perm(perm)
    assert viewer.has_perm(perm)


# The usage page (invoices 0012_usage_uploads).
def test_both_roles_may_view_usage_records_and_uploads(clerk, viewer):
    for user in (clerk, viewer):
        assert user.has_perm("customers.view_usagerecord")
        assert user.has_perm("invoices.view_usageupload")


def test_only_a_clerk_may_upload_a_usage_file(clerk, viewer):
    assert clerk.has_perm("invoices.add_usageupload")
    assert not viewer.has_perm("invoices.add_usageupload")
    assert not clerk.has_perm("customers.add_usagerecord")
