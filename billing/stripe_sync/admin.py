"""The invoice admin with its Stripe side: the Stripe invoice and the customer's copy,
drift from Stripe, and the actions that change an invoice in Stripe too (void, mark
uncollectible, push again, credit notes, void and reissue). It extends
billing/invoicing/admin.py's InvoiceAdmin and takes its place (this app comes after
invoicing in INSTALLED_APPS)."""

import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from api.errors import ApiError
from billing.invoicing.admin import InvoiceAdmin
from billing.invoicing.fx import MissingFxRate
from billing.invoicing.models import (
    CreditMethod,
    CreditNote,
    CreditReason,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    PushState,
)
from billing.invoicing.services import (
    CreditLineRequest,
    CreditNoteRequest,
    credit_note_issue,
    invoice_reissue_preview,
)
from billing.money import from_minor_units
from billing.plans.models import PlanVersion
from billing.stripe_sync.services import invoice_cancel, invoice_void_and_reissue
from billing.stripe_sync.stripe_api import StripeRefused, StripeRetryable
from billing.stripe_sync.tasks import push_credit_note, push_invoice
from common.admin import FactsAdmin
from common.queue import enqueue


def _push_queued(
    model_admin: admin.ModelAdmin, request: HttpRequest, task: Any, pk: int, name: str
) -> None:
    """Queue a push again, and say whether the broker took it."""
    if enqueue(task, pk):
        model_admin.message_user(request, f"{name}: push queued.")
    else:
        model_admin.message_user(
            request, f"{name}: the broker is unreachable; try again later.", messages.ERROR
        )


class DriftFilter(admin.SimpleListFilter):
    title = "drift from Stripe"
    parameter_name = "drift"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "differs from Stripe")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> QuerySet[Invoice]:
        return queryset.exclude(drift="") if self.value() == "yes" else queryset


class StripeInvoiceAdmin(InvoiceAdmin):
    """The state machine's operator moves (void, uncollectible) go to Stripe first when
    the invoice is there, so the two never disagree for long."""

    list_display = (*InvoiceAdmin.list_display, "stripe_link", "customer_links", "drift")
    list_filter = ("status", "push_state", DriftFilter, "currency")
    actions = ["retry_push", "void", "mark_uncollectible"]
    readonly_fields = ("corrections",)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = [name for name in super().get_fields(request, obj) if name != "corrections"]
        return ["corrections", *fields]

    @admin.display(description="corrections")
    def corrections(self, invoice: Invoice) -> str:
        """Its credit notes and reissue, and links to make them."""
        parts = []
        if invoice.replaced_by_id:
            url = reverse("admin:invoicing_invoice_change", args=[invoice.replaced_by_id])
            parts.append(format_html('Reissued as <a href="{}">invoice {}</a>.', url,
                                     invoice.replaced_by_id))  # fmt: skip
        replaces = Invoice.objects.filter(replaced_by=invoice).values_list("pk", flat=True)
        for pk in replaces:
            url = reverse("admin:invoicing_invoice_change", args=[pk])
            parts.append(format_html('Reissues <a href="{}">invoice {}</a>.', url, pk))
        notes = invoice.credit_notes.all()
        if notes:
            parts.append(
                format_html(
                    "Credit notes: {}.",
                    format_html_join(
                        ", ",
                        "{} ({} {}, {})",
                        (
                            (note.number, from_minor_units(note.total, note.currency),
                             note.currency, note.get_push_state_display())
                            for note in notes
                        ),
                    ),
                )
            )  # fmt: skip
        links = [
            ("admin:invoicing_invoice_credit_note", "Issue a credit note"),
            ("admin:invoicing_invoice_reissue", "Void and reissue"),
        ]
        parts.append(
            format_html_join(
                " · ", '<a href="{}">{}</a>', ((reverse(n, args=[invoice.pk]), t) for n, t in links)
            )
        )
        return format_html_join(" ", "{}", ((part,) for part in parts))

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:invoice_id>/credit-note/",
                self.admin_site.admin_view(self.credit_note_view),
                name="invoicing_invoice_credit_note",
            ),
            path(
                "<int:invoice_id>/reissue/",
                self.admin_site.admin_view(self.reissue_view),
                name="invoicing_invoice_reissue",
            ),
            *super().get_urls(),
        ]

    def _page(self, request: HttpRequest, template: str, **context: Any) -> HttpResponse:
        return render(
            request, template, {**self.admin_site.each_context(request), "opts": self.model._meta,
                                **context}
        )  # fmt: skip

    def credit_note_view(self, request: HttpRequest, invoice_id: int) -> HttpResponse:
        """A credit note: an amount per invoice line to give back (or one of its own), the
        method and reason. The form carries its own id, so a second submit is the same
        note."""
        if not self.has_credit_permission(request):
            raise PermissionDenied
        invoice = get_object_or_404(Invoice, pk=invoice_id)
        lines = [line for line in invoice.lines.order_by("position") if line.amount > 0]
        form = CreditNoteForm(invoice, lines, request.POST or None)
        if request.method == "POST" and form.valid():
            try:
                note, _ = credit_note_issue(
                    invoice_id=invoice.pk, request=form.request, by=str(request.user)
                )
            except ApiError as refused:
                form.errors.extend(error.message for error in refused.errors)
            else:
                self.message_user(
                    request,
                    f"Credit note {note.number} of invoice {invoice.pk}: "
                    f"{from_minor_units(note.total, note.currency)} {note.currency}.",
                )
                return HttpResponseRedirect(
                    reverse("admin:invoicing_invoice_change", args=[invoice.pk])
                )
        return self._page(
            request,
            "admin/invoicing/credit_note.html",
            title=f"Credit note on invoice {invoice.pk}",
            invoice=invoice,
            form=form,
        )

    def reissue_view(self, request: HttpRequest, invoice_id: int) -> HttpResponse:
        """Void and reissue: pick the plan version the period should have been rated on,
        see the difference line by line, then confirm."""
        if not self.has_reissue_permission(request):
            raise PermissionDenied
        invoice = get_object_or_404(Invoice.objects.select_related("plan_version__plan"),
                                    pk=invoice_id)  # fmt: skip
        versions = PlanVersion.objects.filter(currency=invoice.currency).select_related("plan")
        chosen = request.POST.get("plan_version") or request.GET.get("plan_version")
        context: dict[str, Any] = {
            "title": f"Void and reissue invoice {invoice.pk}",
            "invoice": invoice,
            "versions": versions.order_by("plan__code", "version"),
            "chosen": int(chosen) if chosen and chosen.isdigit() else invoice.plan_version_id,
            "errors": [],
        }
        if chosen and chosen.isdigit():
            try:
                if request.method == "POST" and "confirm" in request.POST:
                    new = invoice_void_and_reissue(
                        invoice_id=invoice.pk, plan_version_id=int(chosen), by=str(request.user)
                    )
                    self.message_user(
                        request, f"Invoice {invoice.pk} is void; invoice {new.pk} bills its period."
                    )
                    return HttpResponseRedirect(
                        reverse("admin:invoicing_invoice_change", args=[new.pk])
                    )
                context["reissue"] = invoice_reissue_preview(
                    invoice_id=invoice.pk, plan_version_id=int(chosen)
                )
            except ApiError as refused:
                context["errors"] = [error.message for error in refused.errors]
            except MissingFxRate as missing:
                context["errors"] = [str(missing)]
            except (StripeRefused, StripeRetryable) as failure:
                context["errors"] = [f"Stripe: {failure}"]
            except PlanVersion.DoesNotExist:
                context["errors"] = ["No such plan version."]
        return self._page(request, "admin/invoicing/reissue.html", **context)

    @admin.display(description="Stripe")
    def stripe_link(self, invoice: Invoice) -> str:
        if not invoice.stripe_invoice_id:
            return "-"
        return format_html(
            '<a href="https://dashboard.stripe.com/invoices/{}">{}</a>',
            invoice.stripe_invoice_id,
            invoice.stripe_invoice_id,
        )

    @admin.display(description="customer's copy")
    def customer_links(self, invoice: Invoice) -> str:
        """Stripe's hosted page and PDF, what the customer receives."""
        if not invoice.hosted_invoice_url:
            return "-"
        return format_html(
            '<a href="{}">hosted page</a> · <a href="{}">PDF</a>',
            invoice.hosted_invoice_url,
            invoice.invoice_pdf or invoice.hosted_invoice_url,
        )

    # Each action its own permission, with change_invoice: a view-only user can do none.
    # (has_change_permission stays False: invoices are never edited by hand.)
    def _may(self, request: HttpRequest, permission: str) -> bool:
        user = request.user
        return user.has_perm("invoicing.change_invoice") and user.has_perm(
            f"invoicing.{permission}"
        )

    def has_push_permission(self, request: HttpRequest) -> bool:
        return self._may(request, "push_invoice")

    def has_void_permission(self, request: HttpRequest) -> bool:
        return self._may(request, "void_invoice")

    def has_mark_uncollectible_permission(self, request: HttpRequest) -> bool:
        return self._may(request, "mark_uncollectible_invoice")

    def has_credit_permission(self, request: HttpRequest) -> bool:
        return self._may(request, "credit_invoice")

    def has_reissue_permission(self, request: HttpRequest) -> bool:
        return self._may(request, "reissue_invoice")

    @admin.action(description="Push the selected invoices to Stripe again", permissions=["push"])
    def retry_push(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        for invoice in queryset.exclude(push_state__in=[PushState.PUSHED, PushState.NOT_SENT]):
            _push_queued(self, request, push_invoice, invoice.pk, f"Invoice {invoice.pk}")

    def _move(self, request: HttpRequest, queryset: QuerySet[Invoice], status: str) -> None:
        for invoice in queryset:
            try:
                invoice_cancel(invoice_id=invoice.pk, status=status)
            except ApiError as refused:
                self.message_user(request, refused.errors[0].message, messages.ERROR)
            except (StripeRefused, StripeRetryable) as failure:
                self.message_user(request, f"Invoice {invoice.pk}: {failure}", messages.ERROR)
            else:
                self.message_user(request, f"Invoice {invoice.pk} is {status}.")

    @admin.action(description="Void the selected invoices", permissions=["void"])
    def void(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        self._move(request, queryset, InvoiceStatus.VOID)

    @admin.action(
        description="Mark the selected invoices uncollectible",
        permissions=["mark_uncollectible"],
    )
    def mark_uncollectible(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        self._move(request, queryset, InvoiceStatus.UNCOLLECTIBLE)


@dataclass
class CreditNoteForm:
    """The credit note page's form (plain fields: one amount per invoice line)."""

    invoice: Invoice
    lines: list[InvoiceLine]
    data: Any

    def __post_init__(self) -> None:
        self.errors: list[str] = []
        self.request: CreditNoteRequest | None = None
        paid = self.invoice.status == InvoiceStatus.PAID
        self.methods = [
            (value, label)
            for value, label in CreditMethod.choices
            if (value != CreditMethod.AMOUNT_DUE) == paid
        ]
        self.reasons = CreditReason.choices
        self.key = (self.data or {}).get("key") or f"admin:{uuid.uuid4().hex}"

    def value(self, name: str) -> str:
        return (self.data or {}).get(name, "")

    def valid(self) -> bool:
        asked = []
        for line in self.lines:
            amount = self._amount(f"line_{line.position}", f"line {line.position}")
            if amount is not None:
                asked.append(CreditLineRequest(amount=amount, invoice_line=line.position))
        own = self._amount("own_amount", "the line of its own")
        if own is not None:
            asked.append(CreditLineRequest(amount=own, description=self.value("own_description")))
        if not asked and not self.errors:
            self.errors.append("Give an amount to credit on at least one line.")
        if self.errors:
            return False
        self.request = CreditNoteRequest(
            external_id=self.key,
            lines=tuple(asked),
            method=self.value("method"),
            reason=self.value("reason"),
            memo=self.value("memo").strip()[:500],
        )
        return True

    def _amount(self, name: str, what: str) -> Decimal | None:
        text = self.value(name).strip()
        if not text:
            return None
        try:
            return Decimal(text)
        except InvalidOperation:
            self.errors.append(f"The amount of {what} is not a number: {text}")
            return None


class CreditNoteAdmin(FactsAdmin):
    """Credit notes are issued from their invoice's page (or the API), never added, edited
    or deleted here (FactsAdmin); one whose push failed is pushed again from here."""

    list_display = ("invoice", "number", "method", "total_display", "reason", "push_state",
                    "created_by", "created_at")  # fmt: skip
    list_filter = ("push_state", "method", "reason")
    search_fields = ("invoice__customer__external_id", "external_id", "stripe_credit_note_id")
    list_select_related = ("invoice__customer",)
    actions = ["retry_push"]

    @admin.display(description="total")
    def total_display(self, note: CreditNote) -> str:
        return f"{from_minor_units(note.total, note.currency):f} {note.currency}"

    def has_push_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("invoicing.credit_invoice")

    @admin.action(description="Push the selected credit notes to Stripe again",
                  permissions=["push"])  # fmt: skip
    def retry_push(self, request: HttpRequest, queryset: QuerySet[CreditNote]) -> None:
        for note in queryset.filter(push_state__in=[PushState.FAILED, PushState.PENDING]):
            _push_queued(self, request, push_credit_note, note.pk, f"Credit note {note.pk}")


admin.site.unregister(Invoice)
admin.site.register(Invoice, StripeInvoiceAdmin)
admin.site.register(CreditNote, CreditNoteAdmin)
