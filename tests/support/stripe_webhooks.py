"""Stripe webhooks as Stripe signs and sends them (the Stripe-Signature scheme)."""

import hashlib
import hmac
import json
import time

from rest_framework.test import APIClient

SECRET = "whsec_current"


def event(event_id, event_type, stripe_invoice="in_test_1"):
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": {"id": stripe_invoice, "object": "invoice"}},
    }


def signed(payload, secret=SECRET, timestamp=None):
    body = json.dumps(payload).encode()
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return body, f"t={timestamp},v1={digest.hexdigest()}"


def deliver(payload, **signing):
    body, signature = signed(payload, **signing)
    return APIClient().post(
        "/v1/webhooks/stripe",
        body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature,
    )
