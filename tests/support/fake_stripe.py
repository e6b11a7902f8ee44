"""localstripe, the real stateful fake Stripe server from PyPI, with a small shim for the
gaps of localstripe 1.15.10 that payback's Stripe calls reach. Started by the
`stripe_server` fixture as `python tests/support/fake_stripe.py --port N`.

The shim adds, and nothing more:
- `POST /v1/invoices/{id}/finalize` and `.../mark_uncollectible` (missing in
  localstripe), sending `invoice.finalized` and `invoice.marked_uncollectible`;
- `Idempotency-Key`: a POST repeated with the same key answers what the first answered,
  without doing it again, as Stripe does;
- voiding an invoice that has no payment intent (localstripe assumes one);
- invoice items created for a given invoice appear on its lines (localstripe only
  gathers pending items when the invoice is made), with Stripe's `quantity`,
  `unit_amount_decimal` and `period[start]`/`period[end]` (localstripe knows only an
  amount and `period_start`/`period_end`); the amount is their product;
- finalize keeps `auto_advance` and gives the invoice a `hosted_invoice_url` and an
  `invoice_pdf`, as Stripe does;
- invoices for customers without a subscription (from their pending invoice items),
  and `collection_method`, `days_until_due` and `auto_advance` on invoice create, which
  localstripe refuses: kept on the invoice instead of refused;
- `paid_out_of_band` on `POST /v1/invoices/{id}/pay` (localstripe takes no parameters
  there): the invoice is paid without a charge, sending `invoice.paid`;
- credit notes (`POST /v1/credit_notes`, `GET /v1/credit_notes/{id}`, missing in
  localstripe), with custom lines, on open or paid invoices, under Stripe's rules: an
  open invoice's note lowers its amount due; a paid invoice's must be refunded, put on
  the customer's balance or credited outside Stripe, those adding up to the note; no
  invoice is credited more than its total; `credit_note.created` is sent;
- faults on demand, for retry tests: `POST /_config/faults` with `status`, `count`,
  `retry_after` and `delay` makes the next `count` API requests answer that status (or
  wait `delay` seconds first); a 500 carries `Stripe-Should-Retry: true`;
- `GET /_config/requests`: how many API writes reached the server (per path prefix);
- no pickle file in the system temp folder (parallel runs would share it), and it
  listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from decimal import Decimal
from typing import Any

from aiohttp import web
from localstripe import resources, server
from localstripe.resources import Event, Invoice, store
from localstripe.webhooks import schedule_webhook

store.dump_to_disk = lambda: None  # type: ignore[method-assign]

_idempotent: dict[tuple[str, str], tuple[int, bytes]] = {}
_faults: dict[str, Any] = {"count": 0}
_writes: Counter[str] = Counter()
# Invoice fields localstripe refuses, with how Stripe types them (they arrive as form text).
_INVOICE_EXTRAS: dict[str, Any] = {
    "collection_method": str,
    "days_until_due": int,
    "auto_advance": lambda value: str(value).lower() == "true",
}


@web.middleware
async def faults_and_idempotency(request: web.Request, handler: Any) -> web.StreamResponse:
    if not request.path.startswith("/v1/"):
        return await handler(request)
    if _faults["count"] > 0:
        _faults["count"] -= 1
        if _faults.get("delay"):
            await asyncio.sleep(_faults["delay"])
        if _faults.get("status"):
            headers = {"Stripe-Should-Retry": "true"} if _faults["status"] >= 500 else {}
            if _faults.get("retry_after") is not None:
                headers["Retry-After"] = str(_faults["retry_after"])
            body = {"error": {"type": "api_error", "message": "injected fault"}}
            return web.json_response(body, status=_faults["status"], headers=headers)
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or key is None:
        return await handler(request)
    cached = _idempotent.get((key, request.path))
    if cached is not None:
        status, body = cached
        return web.Response(status=status, body=body, content_type="application/json",
                            headers={"Idempotent-Replayed": "true"})  # fmt: skip
    _writes[request.path.split("/")[2]] += 1
    response = await handler(request)
    if isinstance(response, web.Response) and response.status < 500:
        _idempotent[(key, request.path)] = (response.status, response.body)
    return response


_original_invoice_create = Invoice._api_create


def _invoice_create(**data: Any) -> Invoice:
    extras = {name: kind(data.pop(name)) for name, kind in _INVOICE_EXTRAS.items() if name in data}
    customer = resources.Customer._api_retrieve(data.get("customer"))
    if customer.subscriptions._list:
        invoice = _original_invoice_create(**data)
    else:  # localstripe invoices only customers with a subscription; Stripe does not
        data.pop("pending_invoice_items_behavior", None)
        invoice = Invoice(**data)
    for name, value in extras.items():
        setattr(invoice, name, value)
    return invoice


_original_item_create = resources.InvoiceItem._api_create


def _invoice_item_create(**data: Any) -> resources.InvoiceItem:
    # Stripe's quantity × unit_amount_decimal and period[start]/[end], which localstripe
    # knows only as amount and period_start/period_end. Stripe computes the amount; this
    # shim refuses a product with a fraction of a minor unit rather than guess how Stripe
    # rounds it (payback never sends one).
    quantity = int(data.pop("quantity", 1))
    unit = data.pop("unit_amount_decimal", None)
    if unit is not None:
        product = quantity * Decimal(unit)
        if product != product.to_integral_value() or quantity < 0:
            raise resources.UserError(400, "quantity × unit_amount_decimal is not whole")
        data["amount"] = int(product)
    period = data.pop("period", None)
    if period is not None:
        data["period_start"], data["period_end"] = period["start"], period["end"]
    item = _original_item_create(**data)
    item.quantity = quantity
    item.pricing = {
        "type": "price_details",
        "unit_amount_decimal": unit if unit is not None else str(item.amount),
    }
    if item.invoice is not None:  # localstripe leaves it off the invoice's lines
        invoice = Invoice._api_retrieve(item.invoice)
        if not invoice.lines._list:
            invoice.currency = item.currency
        line = resources.InvoiceLineItem(item)
        line.pricing = item.pricing
        invoice.lines._list.append(line)
    return item


def _invoice_finalize(id: str, auto_advance: Any = None, **data: Any) -> Invoice:
    invoice = Invoice._api_retrieve(id)
    if invoice.status != "draft":
        raise resources.UserError(400, "This invoice is already finalized")
    if auto_advance is not None:
        invoice.auto_advance = _INVOICE_EXTRAS["auto_advance"](auto_advance)
    invoice._finalize()
    # Stripe gives a finalized invoice its hosted page and PDF.
    invoice.hosted_invoice_url = f"https://invoice.stripe.test/i/{invoice.id}"
    invoice.invoice_pdf = f"https://pay.stripe.test/invoice/{invoice.id}/pdf"
    schedule_webhook(Event("invoice.finalized", invoice))
    return invoice


def _invoice_mark_uncollectible(id: str, **data: Any) -> Invoice:
    invoice = Invoice._api_retrieve(id)
    if invoice.status != "open":
        raise resources.UserError(400, "Only open invoices can be marked uncollectible")
    invoice._uncollectible = True
    schedule_webhook(Event("invoice.marked_uncollectible", invoice))
    return invoice


class CreditNote(resources.StripeObject):
    """Stripe's credit note, as much of it as payback uses."""

    object = "credit_note"
    _id_prefix = "cn_"

    def __init__(
        self,
        invoice: str | None = None,
        lines: list[dict[str, Any]] | None = None,
        memo: str | None = None,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
        refund_amount: Any = None,
        credit_amount: Any = None,
        out_of_band_amount: Any = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise resources.UserError(400, "Unexpected " + ", ".join(kwargs))
        if not isinstance(invoice, str) or not lines:
            raise resources.UserError(400, "invoice and lines are required")
        found = Invoice._api_retrieve(invoice)
        amounts = []
        for line in lines:
            if line.get("type") != "custom_line_item" or "unit_amount" not in line:
                raise resources.UserError(400, "this stand-in knows custom line items only")
            amounts.append(int(line.get("quantity", 1)) * int(line["unit_amount"]))
        amount = sum(amounts)
        status = found.status
        credited = sum(note.amount for note in _credit_notes(invoice))
        if status not in ("open", "paid"):
            raise resources.UserError(400, f"You cannot credit a {status} invoice")
        if amount <= 0 or credited + amount > found.total:
            raise resources.UserError(400, "The credit note exceeds what the invoice can credit")
        outside = {
            "refund_amount": int(refund_amount or 0),
            "credit_amount": int(credit_amount or 0),
            "out_of_band_amount": int(out_of_band_amount or 0),
        }
        if status == "paid" and sum(outside.values()) != amount:
            raise resources.UserError(
                400,
                "The sum of refund_amount, credit_amount and out_of_band_amount must equal "
                "the credit note amount for a paid invoice",
            )
        super().__init__()
        self.invoice = invoice
        self.customer = found.customer
        self.currency = found.currency
        self.amount = self.total = self.subtotal = amount
        self.type = "post_payment" if status == "paid" else "pre_payment"
        self.status = "issued"
        self.memo = memo
        self.reason = reason
        self.metadata = metadata or {}
        self.number = f"{found.id[3:11].upper()}-CN-{len(_credit_notes(invoice)):02d}"
        self.pdf = f"https://pay.stripe.test/credit_notes/{self.id}/pdf"
        self.lines = {
            "object": "list",
            "data": [
                {"type": "custom_line_item", "description": line.get("description"),
                 "quantity": int(line.get("quantity", 1)), "amount": line_amount}
                for line, line_amount in zip(lines, amounts, strict=True)
            ],
        }  # fmt: skip
        for name, value in outside.items():
            setattr(self, name, value)
        if status == "open":  # lowers what is due
            found._credited = getattr(found, "_credited", 0) + amount
        schedule_webhook(Event("credit_note.created", self))


def _credit_notes(invoice: str) -> list[CreditNote]:
    return [
        value
        for key, value in store.items()
        if key.startswith("credit_note:") and value.invoice == invoice
    ]


def _amount_due(invoice: Invoice) -> int:
    return max(0, invoice.total - getattr(invoice, "_credited", 0))


_original_cancel = resources.PaymentIntent._api_cancel


def _payment_intent_cancel(id: str | None, **data: Any) -> Any:
    # localstripe voids an invoice by cancelling its payment intent, which an invoice
    # sent for payment by e-mail does not have.
    return None if id is None else _original_cancel(id, **data)


_original_status = Invoice.status


def _status(invoice: Invoice) -> str:
    status = _original_status.fget(invoice)
    if getattr(invoice, "_paid_out_of_band", False) and status in ("open", "uncollectible"):
        return "paid"
    if getattr(invoice, "_uncollectible", False) and status == "open":
        return "uncollectible"
    return status


@web.middleware
async def paid_out_of_band(request: web.Request, handler: Any) -> web.StreamResponse:
    """`POST /v1/invoices/{id}/pay` with `paid_out_of_band`: paid without a charge (the rest
    of that route is localstripe's, which takes no parameters)."""
    parts = request.path.split("/")
    if request.method != "POST" or len(parts) != 5 or parts[2:5:2] != ["invoices", "pay"]:
        return await handler(request)
    data = await server.get_post_data(request) or {}
    if str(data.get("paid_out_of_band")).lower() != "true":
        return await handler(request)
    invoice = Invoice._api_retrieve(parts[3])
    if invoice.status not in ("open", "uncollectible"):
        raise resources.UserError(400, f"Invoice is {invoice.status}")
    invoice._paid_out_of_band = True
    schedule_webhook(Event("invoice.paid", invoice))
    return server.json_response(invoice._export())


async def set_faults(request: web.Request) -> web.Response:
    _faults.clear()
    _faults.update({"count": 1, **(await request.json())})
    return web.json_response(_faults)


async def get_requests(request: web.Request) -> web.Response:
    return web.json_response(dict(_writes))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    Invoice._api_create = staticmethod(_invoice_create)  # type: ignore[method-assign]
    resources.InvoiceItem._api_create = staticmethod(_invoice_item_create)  # type: ignore[method-assign]
    app = server.app
    app.middlewares.insert(0, faults_and_idempotency)
    app.router.add_route(
        "POST", "/v1/invoices/{id}/finalize", server.api_extra(_invoice_finalize, None)
    )
    app.middlewares.append(paid_out_of_band)  # inside localstripe's error and auth handling
    app.router.add_route(
        "POST",
        "/v1/invoices/{id}/mark_uncollectible",
        server.api_extra(_invoice_mark_uncollectible, None),
    )
    Invoice.status = property(_status)  # type: ignore[method-assign,assignment]
    Invoice.amount_due = property(_amount_due)  # type: ignore[method-assign,assignment]
    for method, url, handler in (
        ("POST", "/v1/credit_notes", server.api_create),
        ("GET", "/v1/credit_notes/{id}", server.api_retrieve),
        ("GET", "/v1/credit_notes", server.api_list_all),
    ):
        app.router.add_route(method, url, handler(CreditNote, url))
    resources.PaymentIntent._api_cancel = staticmethod(_payment_intent_cancel)  # type: ignore[method-assign]
    app.router.add_post("/_config/faults", set_faults)
    app.router.add_get("/_config/requests", get_requests)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
