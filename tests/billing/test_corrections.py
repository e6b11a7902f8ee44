"""Corrections after a close: credit notes through Stripe's credit notes API (the real
`stripe` client against the Stripe stand-in), disputes credited by a credit note, and an
invoice voided and reissued from its own snapshot.

Every figure below is worked from the rule a customer expects, not read off the code:
the plan bills a 10.00 base fee and 0.99 per resolution; three resolutions make an
invoice of 12.97 (lines: 1 base fee 1000, 2 resolutions 297)."""

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import stripe as stripe_sdk
from django.contrib.auth.models import Permission
from django.db import connection
from django.db.models import Sum
from django.test import Client
from rest_framework.test import APIClient

from api.errors import ApiError
from billing.analytics.models import ReconciliationCell
from billing.analytics.services import invoices_reconcile
from billing.credits.services import GrantRequest, grant_create
from billing.invoicing.models import CreditNote, Invoice, InvoiceStatus, PushState
from billing.invoicing.services import (
    CreditLineRequest,
    CreditNoteRequest,
    credit_note_issue,
    invoice_move,
    invoice_reissue,
    invoice_reissue_preview,
    period_close,
)
from billing.plans.models import PlanVersion, Subscription
from billing.statements.links import statement_path
from billing.stripe_sync import stripe_api
from billing.stripe_sync.selectors import credit_notes_push_stalled
from billing.stripe_sync.services import credit_note_push, invoice_push
from billing.stripe_sync.tasks import push_credit_note
from outcomes.models import Dispute, Outcome
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create
from tests.support.polling import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)
RESOLUTION = {"type": "resolution", "unit_price": "0.99"}


def _succeed(customer, external_id, at):
    return Outcome.objects.create(
        external_id=external_id, customer=customer, type="resolution", status="succeeded",
        occurred_at=at, succeeded_at=at, succeeded_recorded_at=at,
    )  # fmt: skip


def _october(settings, code="support-ai", outcomes=(RESOLUTION,)):
    """Acme's October: three resolutions, closed (not pushed: STRIPE_API_KEY is off while
    it closes)."""
    settings.STRIPE_API_KEY = ""
    version = plan_load(code, base_fee="10", outcomes=list(outcomes))
    customer = customer_create(external_id="acme", name="Acme", email="billing@acme.test")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    for i in range(3):
        _succeed(customer, f"o-{i}", OCTOBER + timedelta(days=i))
    return period_close(customer_id=customer.pk, period_start=OCTOBER)


@pytest.fixture
def open_invoice(stripe, settings):
    """October's invoice, pushed: finalized here, open in Stripe."""
    invoice = _october(settings)
    settings.STRIPE_API_KEY = "sk_test_payback"
    return invoice_push(invoice_id=invoice.pk)


def _stripe():
    return stripe_sdk.StripeClient(
        "sk_test_payback", base_addresses={"api": stripe_api.settings.STRIPE_API_BASE}
    )


def _post(client: APIClient, invoice: Invoice, body):
    return client.post(f"/v1/invoices/{invoice.pk}/credit-notes", body, format="json")


def _error(response):
    error = response.json()["errors"][0]
    return (response.status_code, error.get("field"), error["code"])


# --- credit notes -----------------------------------------------------------------------


def test_a_credit_note_on_an_open_invoice_lowers_what_stripe_asks_for(
    open_invoice, client_with_key
):
    answer = _post(
        client_with_key,
        open_invoice,
        {
            "id": "cn-1",
            "reason": "product_unsatisfactory",
            "memo": "One resolution did not resolve.",
            "lines": [{"invoice_line": 2, "amount": "0.99"}],
        },
    )

    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert (body["number"], body["method"], body["total"]) == (1, "amount_due", 99)
    assert body["lines"][0]["invoice_line"] == 2
    assert body["push_state"] == "pending"
    note = credit_note_push(credit_note_id=CreditNote.objects.get().pk)
    assert note.push_state == PushState.PUSHED and note.stripe_credit_note_id.startswith("cn_")
    remote = _stripe().v1.credit_notes.retrieve(note.stripe_credit_note_id)
    assert (remote.invoice, remote.amount, remote.type) == (
        open_invoice.stripe_invoice_id,
        99,
        "pre_payment",
    )
    assert remote.metadata["payback_credit_note"] == str(note.pk)
    remote_invoice = _stripe().v1.invoices.retrieve(open_invoice.stripe_invoice_id)
    assert (remote_invoice.total, remote_invoice.amount_due) == (1297, 1297 - 99)
    shown = client_with_key.get(f"/v1/invoices/{open_invoice.pk}").json()
    assert [n["total"] for n in shown["credit_notes"]] == [99]


def test_a_paid_invoice_is_refunded_or_credited_as_the_operator_says(open_invoice, client_with_key):
    _stripe().v1.invoices.pay(open_invoice.stripe_invoice_id, params={"paid_out_of_band": True})
    invoice_move(invoice_id=open_invoice.pk, status=InvoiceStatus.PAID)
    line = {"invoice_line": 1, "amount": "2.50"}

    unsaid = _post(client_with_key, open_invoice, {"id": "cn-1", "lines": [line]})
    unpaid_kind = _post(
        client_with_key, open_invoice, {"id": "cn-1", "method": "amount_due", "lines": [line]}
    )
    refund = _post(
        client_with_key, open_invoice, {"id": "cn-1", "method": "refund", "lines": [line]}
    )
    balance = _post(
        client_with_key,
        open_invoice,
        {"id": "cn-2", "method": "customer_balance", "lines": [{**line, "amount": "1.00"}]},
    )

    assert _error(unsaid) == (400, "method", "required")
    assert _error(unpaid_kind) == (400, "method", "invalid")
    assert (refund.status_code, balance.status_code) == (201, 201)
    for note in CreditNote.objects.order_by("number"):
        credit_note_push(credit_note_id=note.pk)
    first, second = CreditNote.objects.order_by("number")
    remote_refund = _stripe().v1.credit_notes.retrieve(first.stripe_credit_note_id)
    remote_balance = _stripe().v1.credit_notes.retrieve(second.stripe_credit_note_id)
    assert (remote_refund.type, remote_refund.refund_amount, remote_refund.amount) == (
        "post_payment",
        250,
        250,
    )
    assert (remote_balance.credit_amount, remote_balance.amount) == (100, 100)


def test_credit_notes_never_give_back_more_than_a_line_or_the_invoice_billed(
    open_invoice, client_with_key
):
    def post(lines, key="cn"):
        return _post(client_with_key, open_invoice, {"id": key, "lines": lines})

    over_the_line = post([{"invoice_line": 2, "amount": "2.98"}])
    first = post([{"invoice_line": 2, "amount": "2.00"}], "cn-1")
    over_what_is_left = post([{"invoice_line": 2, "amount": "0.98"}], "cn-2")
    over_the_invoice = post([{"amount": "11.00", "description": "Goodwill"}], "cn-3")
    no_such_line = post([{"invoice_line": 9, "amount": "1"}])
    nameless = post([{"amount": "1"}])
    sub_cent = post([{"invoice_line": 1, "amount": "0.001"}])
    negative = post([{"invoice_line": 1, "amount": "-1"}])
    nothing = post([])

    assert _error(over_the_line) == (409, "lines.0.amount", "exceeds_line")
    assert first.status_code == 201
    assert _error(over_what_is_left) == (409, "lines.0.amount", "exceeds_line")
    # 12.97 billed, 2.00 credited: 10.97 is left; 11.00 is too much.
    assert _error(over_the_invoice) == (409, "lines", "exceeds_invoice")
    assert _error(no_such_line) == (400, "lines.0.invoice_line", "not_found")
    assert _error(nameless) == (400, "lines.0.description", "required")
    assert _error(sub_cent)[:2] == (400, "lines.0.amount")
    assert _error(negative)[:2] == (400, "lines.0.amount")
    assert _error(nothing)[:2] == (400, "lines")
    assert list(CreditNote.objects.values_list("total", flat=True)) == [200]
    exact_rest = post([{"invoice_line": 2, "amount": "0.97"}, {"invoice_line": 1, "amount": "10"}])
    assert exact_rest.status_code == 201, exact_rest.content
    assert sum(CreditNote.objects.values_list("total", flat=True)) == open_invoice.total


def test_only_a_finalized_or_paid_invoice_is_credited(stripe, settings, client_with_key):
    draft = _october(settings)
    settings.STRIPE_API_KEY = "sk_test_payback"  # a draft waits for its push
    body = {"id": "cn-1", "lines": [{"invoice_line": 1, "amount": "1"}]}

    waiting = _post(client_with_key, draft, body)
    invoice_push(invoice_id=draft.pk)
    invoice_move(invoice_id=draft.pk, status=InvoiceStatus.VOID)
    void = _post(client_with_key, draft, body)

    assert _error(waiting) == (409, None, "invalid_status")
    assert _error(void) == (409, None, "invalid_status")
    assert not CreditNote.objects.exists()


def test_without_stripe_a_draft_is_credited_here_only(settings, client_with_key):
    invoice = _october(settings)  # no Stripe key: the draft is as final as it gets

    answer = _post(
        client_with_key, invoice, {"id": "cn-1", "lines": [{"invoice_line": 2, "amount": "0.99"}]}
    )

    assert answer.status_code == 201, answer.content
    assert answer.json()["push_state"] == "not_sent"


def test_the_same_credit_note_again_is_the_same_note_and_made_once_in_stripe(
    open_invoice, client_with_key, stripe
):
    body = {"id": "cn-1", "lines": [{"invoice_line": 2, "amount": "0.99"}]}

    first = _post(client_with_key, open_invoice, body)
    again = _post(client_with_key, open_invoice, body)
    other = _post(client_with_key, open_invoice, {**body, "memo": "other terms"})
    note = CreditNote.objects.get()
    before = stripe.writes().get("credit_notes", 0)
    made = credit_note_push(credit_note_id=note.pk).stripe_credit_note_id
    # A crash between Stripe's answer and our commit: the note is left marked as being
    # pushed, without Stripe's id; the task, redelivered, runs the push again.
    CreditNote.objects.filter(pk=note.pk).update(
        push_state=PushState.PUSHING, stripe_credit_note_id=""
    )
    pushed = credit_note_push(credit_note_id=note.pk)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert _error(other) == (409, "id", "conflict")
    assert stripe.writes().get("credit_notes", 0) - before == 1
    assert pushed.push_state == PushState.PUSHED and pushed.stripe_credit_note_id == made
    listed = _stripe().v1.credit_notes.list(params={"limit": 100})
    mine = [cn for cn in listed.data if cn.invoice == open_invoice.stripe_invoice_id]
    assert len(mine) == 1


def test_two_credit_notes_at_once_never_credit_more_than_the_line(open_invoice):
    results = []

    def issue(key):
        try:
            credit_note_issue(
                invoice_id=open_invoice.pk,
                request=CreditNoteRequest(
                    external_id=key,
                    lines=(CreditLineRequest(amount=Decimal("2.00"), invoice_line=2),),
                ),
            )
            results.append("issued")
        except ApiError as refused:
            results.append(refused.errors[0].code)
        finally:
            connection.close()

    threads = [threading.Thread(target=issue, args=(f"cn-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == ["exceeds_line", "issued"]
    assert list(CreditNote.objects.values_list("total", flat=True)) == [200]


def test_a_credit_note_stripe_refuses_is_marked_failed_and_a_lost_one_is_found(
    open_invoice, stripe
):
    note, _ = credit_note_issue(
        invoice_id=open_invoice.pk,
        request=CreditNoteRequest(
            external_id="cn-1", lines=(CreditLineRequest(amount=Decimal("1"), invoice_line=1),)
        ),
    )
    CreditNote.objects.filter(pk=note.pk).update(created_at=note.created_at - timedelta(hours=1))
    stalled = credit_notes_push_stalled(before=note.created_at)
    stripe.fail_next(status=400)

    state = push_credit_note.apply(args=[note.pk]).get()

    assert stalled == [note.pk]  # never tried: the beat sends it again
    assert state == PushState.FAILED
    note.refresh_from_db()
    assert note.push_state == PushState.FAILED and "400" in note.push_error


def test_the_margins_and_the_statement_show_what_was_given_back(open_invoice, client_with_key):
    invoices_reconcile(invoice_ids=[open_invoice.pk])

    def revenue(group_by):
        report = client_with_key.get(
            "/v1/analytics/margins",
            {"from": OCTOBER.isoformat(), "to": NOVEMBER.isoformat(), "group_by": group_by},
        ).json()
        return {row["key"]: Decimal(row["revenue"]) for row in report["rows"]}

    before = revenue("outcome_type")
    _post(
        client_with_key,
        open_invoice,
        {"id": "cn-1", "lines": [{"invoice_line": 2, "amount": "0.99"}]},
    )
    invoices_reconcile(invoice_ids=[open_invoice.pk])  # what the note's task runs
    after = revenue("outcome_type")
    statement = client_with_key.get(f"/v1/invoices/{open_invoice.pk}/statement").json()

    # The credit goes off the resolutions' revenue, not the base fee's.
    assert before["resolution"] - after["resolution"] == Decimal("0.99")
    assert sum(after.values()) == Decimal("12.97") - Decimal("0.99")
    assert revenue("customer") == {"acme": Decimal("11.98")}
    assert statement["credited"] == 99
    assert statement["lines_total"] == 1297  # the invoice itself is never edited
    assert [line["description"] for line in statement["credit_notes"][0]["lines"]] == [
        "Credit: " + open_invoice.lines.get(position=2).description
    ]


# --- disputes credited by a credit note --------------------------------------------------


def _decide(staff: Client, dispute: Dispute, decision: str, note: str = "Fair.", method=""):
    return staff.post(
        f"/admin/outcomes/dispute/{dispute.pk}/change/",
        {"decision": decision, "note": note, "credit_method": method},
    )


def test_a_dispute_accepted_with_a_credit_note_credits_its_fee_once(
    open_invoice, client_with_key, staff_client, settings
):
    opened = client_with_key.post(
        "/v1/outcomes/o-1/disputes", {"reason": "Not resolved."}, format="json"
    )
    dispute = Dispute.objects.get(pk=opened.json()["id"])

    answer = _decide(staff_client, dispute, "credit_note", "The ticket was reopened.")

    assert answer.status_code == 302, answer.content
    dispute.refresh_from_db()
    assert (dispute.status, dispute.remedy) == ("accepted", "credit_note")
    note = CreditNote.objects.get()
    assert (note.total, note.dispute_id, note.invoice_id) == (99, dispute.pk, open_invoice.pk)
    line = note.lines.get()
    assert (line.invoice_line.position, line.outcome.external_id) == (2, "o-1")
    # The outcome stands as billed: the next invoice credits nothing again, and it can no
    # longer be reversed (nor disputed) into a second credit.
    assert Outcome.objects.get(external_id="o-1").status == "succeeded"
    reversal = client_with_key.post("/v1/outcomes/o-1/reverse")
    again = client_with_key.post("/v1/outcomes/o-1/disputes", {"reason": "x"}, format="json")
    assert _error(reversal)[::2] == (409, "credited")
    assert _error(again)[::2] == (409, "credited")
    settings.STRIPE_API_KEY = ""
    november = period_close(customer_id=open_invoice.customer_id, period_start=NOVEMBER)
    assert [line.kind for line in november.lines.all()] == ["base_fee"]
    statement = client_with_key.get(f"/v1/invoices/{open_invoice.pk}/statement").json()
    assert statement["credited"] == 99
    assert {o["id"]: o["dispute"] for o in statement["outcomes"]}["o-1"] == "accepted"


def test_a_dispute_of_an_outcome_billed_nothing_cannot_be_credited_by_a_note(
    stripe, settings, client_with_key, staff_client
):
    invoice = _october(settings, outcomes=[{**RESOLUTION, "included": 1}])
    settings.STRIPE_API_KEY = "sk_test_payback"
    invoice_push(invoice_id=invoice.pk)
    opened = client_with_key.post("/v1/outcomes/o-0/disputes", {"reason": "x"}, format="json")
    dispute = Dispute.objects.get(pk=opened.json()["id"])

    answer = _decide(staff_client, dispute, "credit_note")

    assert answer.status_code == 200  # the page again, with why
    assert "included" in answer.content.decode()
    dispute.refresh_from_db()
    assert dispute.status == "open" and not CreditNote.objects.exists()


# --- void and reissue --------------------------------------------------------------------


def _negotiated(settings):
    """October closed on support-ai (0.99 a resolution); the customer had negotiated 0.79,
    a plan of its own that should have applied."""
    invoice = _october(settings)
    plan_load("acme-negotiated", base_fee="10", outcomes=[{**RESOLUTION, "unit_price": "0.79"}])
    return invoice, PlanVersion.objects.get(plan__code="acme-negotiated")


def test_a_reissue_shows_the_difference_line_by_line_before_anything_changes(settings):
    invoice, negotiated = _negotiated(settings)

    preview = invoice_reissue_preview(invoice_id=invoice.pk, plan_version_id=negotiated.pk)

    changes = [(c.kind, c.before_amount, c.after_amount, c.difference) for c in preview.changes]
    assert changes == [("base_fee", 1000, 1000, 0), ("outcome", 297, 237, -60)]
    assert preview.total == 1237
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.DRAFT and Invoice.objects.count() == 1


def test_void_and_reissue_leaves_exactly_one_live_invoice_billing_the_same_facts(
    stripe, settings, staff_client, client_with_key
):
    invoice, negotiated = _negotiated(settings)
    settings.STRIPE_API_KEY = "sk_test_payback"
    invoice_push(invoice_id=invoice.pk)
    # An outcome recorded after the close: late, for the next invoice, not the reissue.
    _succeed(invoice.customer, "late-1", OCTOBER + timedelta(days=20))
    page = f"/admin/invoicing/invoice/{invoice.pk}/reissue/"

    shown = staff_client.get(page, {"plan_version": negotiated.pk})
    confirmed = staff_client.post(page, {"plan_version": negotiated.pk, "confirm": "1"})

    assert shown.status_code == 200 and "-60" in shown.content.decode()
    assert confirmed.status_code == 302, confirmed.content
    invoice.refresh_from_db()
    new = invoice.replaced_by
    assert invoice.status == InvoiceStatus.VOID
    assert _stripe().v1.invoices.retrieve(invoice.stripe_invoice_id).status == "void"
    assert (new.period_start, new.snapshot, new.plan_version_id) == (
        OCTOBER,
        invoice.snapshot,
        negotiated.pk,
    )
    assert [(line.kind, line.amount) for line in new.lines.all()] == [
        ("base_fee", 1000),
        ("outcome", 237),  # the three the close saw, at 0.79: not the late one
    ]
    live = Invoice.objects.filter(customer=invoice.customer, period_start=OCTOBER).exclude(
        status=InvoiceStatus.VOID
    )
    assert list(live) == [new]
    statement = client_with_key.get(f"/v1/invoices/{new.pk}/statement").json()
    assert [o["id"] for o in statement["outcomes"]] == ["o-0", "o-1", "o-2"]
    assert statement["lines_total"] == new.total == 1237
    # November bills the late outcome once, at the price of the version November is on.
    settings.STRIPE_API_KEY = ""
    november = period_close(customer_id=invoice.customer_id, period_start=NOVEMBER)
    late = [line for line in november.lines.all() if line.kind == "late_usage"]
    assert [(line.amount, line.source_invoice_id) for line in late] == [(79, new.pk)]


def test_a_reissue_is_refused_where_it_could_not_bill_the_period_exactly_once(stripe, settings):
    invoice, negotiated = _negotiated(settings)

    def refused(version=negotiated):
        try:
            invoice_reissue(invoice_id=invoice.pk, plan_version_id=version.pk)
        except ApiError as refusal:
            return refusal.errors[0].code
        return None

    same = refused(invoice.plan_version)
    euro = refused(plan_load("euro", currency="EUR", base_fee="10"))
    credit_note_issue(
        invoice_id=invoice.pk,
        request=CreditNoteRequest(
            external_id="cn", lines=(CreditLineRequest(amount=Decimal("1"), invoice_line=1),)
        ),
    )
    credited = refused()

    assert (same, euro, credited) == ("unchanged", "invalid", "credited")
    assert Invoice.objects.count() == 1 and Invoice.objects.get().status == "draft"


def test_a_paid_invoice_or_one_credits_paid_is_not_reissued(stripe, settings):
    settings.STRIPE_API_KEY = ""
    version = plan_load("pro", base_fee="50")
    plan_load("pro-cheaper", base_fee="40")
    customer = customer_create(external_id="acme")
    Subscription.objects.create(customer=customer, plan=version.plan, started_at=OCTOBER)
    grant_create(
        customer=customer,
        request=GrantRequest(amount=Decimal("5"), currency="USD", effective_at=OCTOBER),
    )
    drew = period_close(customer_id=customer.pk, period_start=OCTOBER)
    cheaper = PlanVersion.objects.get(plan__code="pro-cheaper")

    with pytest.raises(ApiError, match="Credits paid part") as refusal:
        invoice_reissue(invoice_id=drew.pk, plan_version_id=cheaper.pk)

    assert refusal.value.errors[0].code == "credits_used"
    invoice_move(invoice_id=drew.pk, status=InvoiceStatus.FINALIZED)
    invoice_move(invoice_id=drew.pk, status=InvoiceStatus.PAID)
    with pytest.raises(ApiError, match="Stripe cannot void it"):
        invoice_reissue(invoice_id=drew.pk, plan_version_id=cheaper.pk)


def test_a_reissued_period_counts_once_in_the_margins(settings, client_with_key):
    invoice, negotiated = _negotiated(settings)
    invoices_reconcile(invoice_ids=[invoice.pk])
    new = invoice_reissue(invoice_id=invoice.pk, plan_version_id=negotiated.pk)
    invoices_reconcile(invoice_ids=[new.pk])

    report = client_with_key.get(
        "/v1/analytics/margins",
        {"from": OCTOBER.isoformat(), "to": NOVEMBER.isoformat(), "group_by": "customer"},
    ).json()

    [row] = report["rows"]
    assert Decimal(row["revenue"]) == Decimal("12.37")
    assert row["outcomes"]["succeeded"] == 3
    assert report["periods"]["closed"] == 1


def test_an_operator_issues_a_credit_note_from_the_invoice_page_once(open_invoice, staff_client):
    page = f"/admin/invoicing/invoice/{open_invoice.pk}/credit-note/"
    shown = staff_client.get(page)
    key = shown.context["form"].key
    form = {"key": key, "line_2": "0.99", "method": "amount_due", "reason": "", "memo": "Sorry."}

    first = staff_client.post(page, form)
    again = staff_client.post(page, form)  # the same form sent twice
    too_much = staff_client.post(page, {**form, "key": "admin:other", "line_1": "10.01"})
    invoice_page = staff_client.get(f"/admin/invoicing/invoice/{open_invoice.pk}/change/")

    assert shown.status_code == 200 and "Issue the credit note" in shown.content.decode()
    assert (first.status_code, again.status_code) == (302, 302)
    note = CreditNote.objects.get()
    assert (note.total, note.memo, note.created_by) == (99, "Sorry.", "admin")
    assert too_much.status_code == 200 and "has 1000 left to credit" in too_much.content.decode()
    assert "Credit notes: 1 (0.99 USD" in invoice_page.content.decode()


def test_corrections_need_their_own_permissions(open_invoice, client, django_user_model):
    viewer = django_user_model.objects.create_user("viewer", password="pw-viewer-12345")
    viewer.is_staff = True
    viewer.save()
    viewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_invoice", "change_invoice"])
    )
    client.force_login(viewer)

    credit = client.get(f"/admin/invoicing/invoice/{open_invoice.pk}/credit-note/")
    reissue = client.get(f"/admin/invoicing/invoice/{open_invoice.pk}/reissue/")

    assert (credit.status_code, reissue.status_code) == (403, 403)


def test_a_real_worker_pushes_the_note_and_redoes_the_margins(
    open_invoice, client_with_key, celery_worker
):
    answer = _post(
        client_with_key,
        open_invoice,
        {"id": "cn-1", "lines": [{"invoice_line": 2, "amount": "0.99"}]},
    )

    assert answer.status_code == 201
    pushed = wait_for(
        lambda: CreditNote.objects.filter(push_state=PushState.PUSHED).first(),
        what="the credit note pushed by the worker",
    )
    remote = _stripe().v1.credit_notes.retrieve(pushed.stripe_credit_note_id)
    assert remote.amount == 99
    # The breakdown task the note queued takes it off the resolutions' revenue.
    wait_for(
        lambda: (
            ReconciliationCell.objects.filter(
                invoice=open_invoice, outcome_type="resolution"
            ).aggregate(revenue=Sum("revenue"))["revenue"]
            == Decimal("1.98")
        ),
        what="the margin breakdown less the credit",
    )


def test_the_hosted_statement_lists_the_credit_notes(settings, client_with_key):
    invoice = _october(settings)
    _post(
        client_with_key,
        invoice,
        {"id": "cn-1", "lines": [{"amount": "1.50", "description": "Goodwill for the outage"}]},
    )

    page = Client(HTTP_ACCEPT_LANGUAGE="en").get(statement_path(invoice.pk))
    pdf = client_with_key.get(f"/v1/invoices/{invoice.pk}/statement.pdf")

    text = page.content.decode()
    assert page.status_code == 200
    assert 'id="credit-notes"' in text and "Goodwill for the outage" in text and "1.50" in text
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
