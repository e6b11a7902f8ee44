"""The admin: staff only, logins throttled, and who changed invoices and plans recorded."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Permission, User

from billing.invoicing.models import Invoice
from billing.invoicing.services import invoice_move, period_close
from billing.plans.models import PlanVersion, Subscription
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create

# Closes bill what their snapshot sees of committed transactions (billing/invoicing/watermark.py):
# facts and closes each commit.
pytestmark = pytest.mark.django_db(transaction=True)
OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)


def test_repeated_failed_admin_logins_lock_the_account_out(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    User.objects.create_superuser("admin", "admin@example.test", "pw-admin-12345")

    statuses = [
        client.post(
            "/admin/login/", {"username": "admin", "password": "wrong"}, REMOTE_ADDR="10.9.9.9"
        ).status_code
        for _ in range(3)
    ]

    assert statuses == [200, 200, 429]  # the form again, then locked out at the limit

    locked = client.post(
        "/admin/login/",
        {"username": "admin", "password": "pw-admin-12345"},
        REMOTE_ADDR="10.9.9.9",
    )
    assert locked.status_code == 429  # even with the right password
    assert "_auth_user_id" not in client.session


def test_a_good_admin_login_works(client):
    User.objects.create_superuser("admin", "admin@example.test", "pw-admin-12345")

    response = client.post("/admin/login/", {"username": "admin", "password": "pw-admin-12345"})

    assert response.status_code == 302
    assert client.get("/admin/?all").status_code == 200


def test_non_staff_users_are_kept_out_of_the_admin(client):
    User.objects.create_user("clerk", password="pw-clerk-12345")
    client.force_login(User.objects.get(username="clerk"))

    assert client.get("/admin/invoicing/invoice/").status_code == 302


def test_voiding_an_invoice_in_the_admin_is_recorded_with_who_and_when(staff_client):
    version = plan_load("p", outcomes=[{"type": "resolution", "unit_price": "1"}])
    customer = customer_create(external_id="acme")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    invoice = period_close(customer_id=customer.pk, period_start=OCTOBER)

    staff_client.post(
        "/admin/invoicing/invoice/", {"action": "void", "_selected_action": [invoice.pk]}
    )

    entry = LogEntry.objects.get_for_object(Invoice.objects.get(pk=invoice.pk)).latest("timestamp")
    assert entry.actor.username == "admin"
    assert entry.changes_dict["status"] == ["draft", "void"]
    assert entry.timestamp is not None


def test_editing_a_plan_version_in_the_admin_is_recorded(staff_client):
    version = plan_load("p", base_fee="10")
    url = f"/admin/plans/planversion/{version.pk}/change/"
    form = staff_client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data.update(
        {
            "base_fee": "12",
            "included_features": "",
            "outcome_prices-TOTAL_FORMS": "0",
            "outcome_prices-INITIAL_FORMS": "0",
            "pass_throughs-TOTAL_FORMS": "0",
            "pass_throughs-INITIAL_FORMS": "0",
        }
    )

    response = staff_client.post(url, data)

    assert response.status_code == 302, response.content.decode()[:2000]
    entry = LogEntry.objects.get_for_object(PlanVersion.objects.get(pk=version.pk)).latest(
        "timestamp"
    )
    assert entry.actor.username == "admin"
    assert Decimal(entry.changes_dict["base_fee"][1]) == 12


def staff_with(client, *permissions: str):
    """A logged-in staff user who holds these permissions (billing.<codename>) only."""
    user = User.objects.create_user("operator", password="pw-operator-12345", is_staff=True)
    for permission in permissions:
        app, codename = permission.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=codename)
        )
    client.force_login(user)
    return client


@pytest.fixture
def invoice(db):
    version = plan_load("p", outcomes=[{"type": "resolution", "unit_price": "1"}])
    customer = customer_create(external_id="acme")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    return period_close(customer_id=customer.pk, period_start=OCTOBER)


@pytest.mark.parametrize("action", ["void", "mark_uncollectible", "retry_push"])
def test_staff_who_may_only_view_invoices_cannot_act_on_them(client, invoice, action):
    operator = staff_with(client, "invoicing.view_invoice")
    page = operator.get("/admin/invoicing/invoice/")
    assert page.status_code == 200
    invoice_move(invoice_id=invoice.pk, status="finalized")

    response = operator.post(
        "/admin/invoicing/invoice/",
        {"action": action, "_selected_action": [invoice.pk]},
        follow=True,
    )

    form = page.context["action_form"]  # None when no action is offered
    offered = [name for name, _ in form.fields["action"].choices] if form else []
    assert action not in offered
    after = Invoice.objects.get(pk=invoice.pk)
    assert (after.status, after.push_state) == ("finalized", "pending")
    assert not [m for m in response.context["messages"] if "queued" in str(m)]


def test_voiding_takes_the_void_permission(client, invoice):
    operator = staff_with(client, "invoicing.view_invoice", "invoicing.change_invoice")
    operator.post("/admin/invoicing/invoice/", {"action": "void", "_selected_action": [invoice.pk]})
    assert Invoice.objects.get(pk=invoice.pk).status == "draft"  # change alone is not enough

    User.objects.get(username="operator").user_permissions.add(
        Permission.objects.get(content_type__app_label="invoicing", codename="void_invoice")
    )
    operator.post("/admin/invoicing/invoice/", {"action": "void", "_selected_action": [invoice.pk]})

    assert Invoice.objects.get(pk=invoice.pk).status == "void"


def test_the_dashboard_and_its_csv_take_the_analytics_permission(client):
    operator = staff_with(client, "invoicing.view_invoice")
    assert operator.get("/admin/dashboard/").status_code == 403
    assert operator.get("/admin/dashboard/margins.csv").status_code == 403
    assert "/admin/dashboard/" not in operator.get("/admin/").content.decode()

    User.objects.get(username="operator").user_permissions.add(
        Permission.objects.get(content_type__app_label="analytics", codename="view_analytics")
    )

    assert client.get("/admin/dashboard/").status_code == 200
    assert client.get("/admin/dashboard/margins.csv").status_code == 200
