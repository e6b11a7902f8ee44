"""The invoice admin with its Stripe side: the Stripe invoice and the customer's copy,
drift from Stripe, and the actions that change an invoice in Stripe too (void, mark
uncollectible, push again). It extends billing/invoicing/admin.py's InvoiceAdmin and
takes its place (this app comes after invoicing in INSTALLED_APPS)."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from api.errors import ApiError
from billing.invoicing.admin import InvoiceAdmin
from billing.invoicing.models import Invoice, InvoiceStatus, PushState
from billing.stripe_sync.services import invoice_cancel
from billing.stripe_sync.stripe_api import StripeRefused, StripeRetryable
from billing.stripe_sync.tasks import push_invoice
from common.queue import enqueue


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

    @admin.action(description="Push the selected invoices to Stripe again", permissions=["push"])
    def retry_push(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        for invoice in queryset.exclude(push_state__in=[PushState.PUSHED, PushState.NOT_SENT]):
            if enqueue(push_invoice, invoice.pk):
                self.message_user(request, f"Invoice {invoice.pk}: push queued.")
            else:
                self.message_user(
                    request,
                    f"Invoice {invoice.pk}: the broker is unreachable; try again later.",
                    messages.ERROR,
                )

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


admin.site.unregister(Invoice)
admin.site.register(Invoice, StripeInvoiceAdmin)
