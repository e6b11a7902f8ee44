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


_original_cancel = resources.PaymentIntent._api_cancel


def _payment_intent_cancel(id: str | None, **data: Any) -> Any:
    # localstripe voids an invoice by cancelling its payment intent, which an invoice
    # sent for payment by e-mail does not have.
    return None if id is None else _original_cancel(id, **data)


_original_status = Invoice.status


def _status(invoice: Invoice) -> str:
    if getattr(invoice, "_uncollectible", False) and _original_status.fget(invoice) == "open":
        return "uncollectible"
    return _original_status.fget(invoice)


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
    app.router.add_route(
        "POST",
        "/v1/invoices/{id}/mark_uncollectible",
        server.api_extra(_invoice_mark_uncollectible, None),
    )
    Invoice.status = property(_status)  # type: ignore[method-assign,assignment]
    resources.PaymentIntent._api_cancel = staticmethod(_payment_intent_cancel)  # type: ignore[method-assign]
    app.router.add_post("/_config/faults", set_faults)
    app.router.add_get("/_config/requests", get_requests)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
