"""Alert rules: each fires once per subject and month, is stored, and reaches the
operator's webhook signed; webhook URLs that reach private addresses are refused."""

import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from alerts.models import Alert, AlertDelivery, AlertRule, DeliveryState, WebhookEndpoint
from alerts.services import alert_deliver, alerts_evaluate, month_of
from alerts.tasks import evaluate_alerts
from alerts.webhooks import UnsafeUrl, url_check
from billing.plans.models import Subscription
from outcomes.models import Outcome
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create, event_payload
from tests.support.polling import wait_for

RECEIVER_HOST = "127.0.0.2"  # a loopback address the tests allow, standing for a public one


class Receiver:
    """A webhook receiver: records each request, answers the statuses queued (then 200)."""

    def __init__(self, host: str) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.replies: list[tuple[int, dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, dict(self.headers), body))
                status, headers = receiver.replies.pop(0) if receiver.replies else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_port}/hooks/payback"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.ALERT_WEBHOOK_ALLOWED_NETWORKS = [f"{RECEIVER_HOST}/32"]
    server = Receiver(RECEIVER_HOST)
    yield server
    server.close()


@pytest.fixture
def private_listener():
    """Something on 127.0.0.1 that must never be reached."""
    server = Receiver("127.0.0.1")
    yield server
    server.close()


def only_rule(kind, scope="customer", threshold=0):
    """This rule alone (the installation's default rules are set aside)."""
    AlertRule.objects.all().delete()
    return AlertRule.objects.create(
        name=f"{kind} {scope}", kind=kind, scope=scope, threshold_percent=threshold
    )


def losing_customer(client, external_id="duo"):
    """A customer paying $10 this month for calls that cost $25."""
    plan = plan_load("premium", base_fee="10")
    customer = customer_create(external_id=external_id)
    start, _ = month_of(timezone.now())
    Subscription.objects.create(customer=customer, plan=plan.plan, started_at=start)
    events = [event_payload(external_id, cost="25", timestamp=timezone.now().isoformat())]
    assert client.post("/v1/events", {"events": events}, format="json").status_code == 200
    return customer


@pytest.mark.django_db
def test_a_negative_margin_fires_once_per_month_and_not_again_on_rerun(client_with_key):
    rule = only_rule("margin_below")
    losing_customer(client_with_key)

    first = alerts_evaluate()
    again = alerts_evaluate()

    assert [(a.rule, a.subject) for a in first] == [(rule, "customer:duo")]
    assert again == []
    alert = Alert.objects.get()
    assert alert.period_start == month_of(timezone.now())[0]
    assert alert.details["margin"] == "-15"
    assert alert.details["margin_percent"] == "-150"
    assert alert.message == "customer duo: margin -15 USD (-150 %) is below 0 %"


@pytest.mark.django_db
def test_a_margin_above_the_threshold_does_not_fire(client_with_key):
    only_rule("margin_below", threshold=-200)
    losing_customer(client_with_key)  # -150 %

    assert alerts_evaluate() == []


@pytest.mark.django_db
def test_cost_per_success_up_on_last_month_fires_per_outcome_type(client_with_key, settings):
    settings.METERING_LATE_EVENT_WINDOW_DAYS = 400
    only_rule("cost_per_success_up", scope="outcome_type", threshold=25)
    customer = customer_create(external_id="fin")
    now = timezone.now()
    this_month, _ = month_of(now)
    last_month = month_of(this_month - timedelta(days=1))[0]
    # An hour into each month, or halfway to now in this month's first hour: never ahead.
    later = min(timedelta(hours=1), (now - this_month) / 2)
    events = []
    # Last month a success cost $1.00; this month $1.50 (+50 %): a pricier model mix.
    for external_id, at, cost in (("old", last_month, "1.00"), ("new", this_month, "1.50")):
        Outcome.objects.create(
            external_id=external_id,
            customer=customer,
            type="resolution",
            status="succeeded",
            occurred_at=at + later,
            succeeded_at=at + later,
            succeeded_recorded_at=at + later,
        )
        events.append(
            event_payload(
                "fin",
                outcome=external_id,
                cost=cost,
                timestamp=(at + later).isoformat(),
            )
        )
    assert client_with_key.post("/v1/events", {"events": events}, format="json").status_code == 200

    [alert] = alerts_evaluate()

    assert alert.subject == "outcome_type:resolution"
    assert alert.details["rise_percent"] == "50"
    assert alert.details["previous_cost_per_success"] == "1"


@pytest.mark.django_db
def test_unpriced_calls_fire_per_model(client_with_key):
    only_rule("unpriced_calls")
    customer_create(external_id="acme")
    events = [event_payload("acme", provider="acme-ai", model="secret-model-7")]
    assert client_with_key.post("/v1/events", {"events": events}, format="json").status_code == 200

    [alert] = alerts_evaluate()

    assert alert.subject == "model:acme-ai:secret-model-7"
    assert alert.details["unpriced_calls"] == 1


@pytest.mark.django_db
def test_a_premium_tier_below_break_even_fires_per_plan(client_with_key):
    only_rule("premium_below_break_even")
    plan = plan_load("max", premium_seat_fee="10", seat_mode="active")
    customer = customer_create(external_id="duo")
    start, _ = month_of(timezone.now())
    Subscription.objects.create(customer=customer, plan=plan.plan, started_at=start)
    now = timezone.now().isoformat()
    events = [
        event_payload("duo", user="heavy", tier="premium", cost="18", timestamp=now),
        event_payload("duo", user="light", tier="premium", cost="3", timestamp=now),
    ]
    assert client_with_key.post("/v1/events", {"events": events}, format="json").status_code == 200

    [alert] = alerts_evaluate()

    assert alert.subject == "plan:max"
    assert alert.details["seats_over_fee"] == 1
    assert alert.details["tier_margin_percent"] == "-5"  # fees 20, cost 21


def verify(secret: str, body: bytes, header: str) -> bool:
    """The receiver's check, written from the README's description alone."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    signed = parts["t"].encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < 300


@pytest.mark.django_db(transaction=True)
def test_the_beat_task_fires_and_a_real_worker_posts_a_signed_alert(
    celery_worker, client_with_key, receiver
):
    only_rule("margin_below")
    endpoint = WebhookEndpoint.objects.create(url=receiver.url)
    losing_customer(client_with_key)

    evaluate_alerts.delay()
    wait_for(lambda: receiver.requests, what="the webhook request", timeout=20)

    [(path, headers, body)] = receiver.requests
    assert path == "/hooks/payback"
    assert verify(endpoint.secret, body, headers["Payback-Signature"])
    assert not verify(endpoint.secret, body + b" ", headers["Payback-Signature"])
    payload = json.loads(body)
    assert (payload["subject"], payload["kind"]) == ("customer:duo", "margin_below")
    delivery = AlertDelivery.objects.get()
    assert headers["Payback-Delivery"] == str(delivery.pk)
    wait_for(
        lambda: AlertDelivery.objects.get(pk=delivery.pk).state == DeliveryState.DELIVERED,
        what="the delivery marked delivered",
        timeout=10,
    )
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (DeliveryState.DELIVERED, 1)


@pytest.mark.django_db(transaction=True)
def test_a_failing_endpoint_is_retried_with_backoff_until_it_answers(
    celery_worker, client_with_key, receiver, settings
):
    settings.ALERT_WEBHOOK_BACKOFF_SECONDS = 0
    receiver.replies = [(503, {}), (500, {})]
    only_rule("margin_below")
    WebhookEndpoint.objects.create(url=receiver.url)
    losing_customer(client_with_key)

    alerts_evaluate()
    delivery = AlertDelivery.objects.get()
    wait_for(
        lambda: AlertDelivery.objects.get(pk=delivery.pk).state != DeliveryState.PENDING,
        what="the delivery settled",
        timeout=20,
    )
    delivery.refresh_from_db()

    assert (delivery.state, delivery.attempts) == (DeliveryState.DELIVERED, 3)
    assert len(receiver.requests) == 3
    # The same alert each time: one delivery id, one body.
    assert len({(h["Payback-Delivery"], b) for _, h, b in receiver.requests}) == 1


@pytest.mark.django_db
def test_out_of_attempts_the_delivery_is_marked_failed(client_with_key, receiver):
    receiver.replies = [(500, {})]
    only_rule("margin_below")
    WebhookEndpoint.objects.create(url=receiver.url)
    losing_customer(client_with_key)
    alerts_evaluate()
    delivery = AlertDelivery.objects.get()

    assert alert_deliver(delivery_id=delivery.pk, last_attempt=True) == "failed"

    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_error) == (DeliveryState.FAILED, "HTTP 500")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://2130706433/hook",  # 127.0.0.1 spelled as one decimal number
        "http://0x7f000001/hook",  # and in hex
        "http://localhost:8000/hook",  # a name resolving to loopback
        "http://[::ffff:10.0.0.1]/hook",  # IPv4-mapped IPv6
        "http://[::127.0.0.1]/hook",  # IPv4-compatible IPv6
        "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of the metadata service
        "http://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
        "http://[2002:a00:1::1]/hook",  # 6to4 of 10.0.0.1
        "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/hook",  # Teredo of 10.0.0.1
        "http://[fec0::1]/hook",  # site-local (deprecated, reserved)
        "http://240.0.0.1/hook",  # reserved
        "http://192.168.1.10/hook",
        "http://0.0.0.0/hook",
        "ftp://example.com/hook",
        "http://user:pw@93.184.216.34/hook",
    ],
)
@pytest.mark.django_db
def test_webhook_urls_reaching_private_addresses_are_refused_at_save(url):
    with pytest.raises(UnsafeUrl):
        url_check(url)
    with pytest.raises(ValidationError) as refused:
        WebhookEndpoint(url=url).full_clean()
    assert "url" in refused.value.message_dict


def test_a_public_address_is_accepted():
    target = url_check("https://93.184.216.34:8443/hooks?x=1")

    assert (target.address, target.port, target.path) == ("93.184.216.34", 8443, "/hooks?x=1")


@pytest.mark.django_db
def test_the_admin_refuses_a_private_webhook_url(staff_client):
    response = staff_client.post(
        "/admin/alerts/webhookendpoint/add/", {"url": "http://169.254.169.254/", "enabled": "on"}
    )

    assert response.status_code == 200  # the form again, with the error
    assert "link-local" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_an_address_that_turned_private_is_refused_at_send(client_with_key, receiver, settings):
    only_rule("margin_below")
    WebhookEndpoint.objects.create(url=receiver.url)  # allowed when saved
    losing_customer(client_with_key)
    alerts_evaluate()
    settings.ALERT_WEBHOOK_ALLOWED_NETWORKS = []  # as if its name now resolved to loopback

    assert alert_deliver(delivery_id=AlertDelivery.objects.get().pk, last_attempt=False) == "failed"

    delivery = AlertDelivery.objects.get()
    assert delivery.last_error.startswith("refused: 127.0.0.2 is a loopback address")
    assert receiver.requests == []


@pytest.mark.parametrize("private_target", ["listener", "http://10.0.0.1/hook"])
@pytest.mark.django_db
def test_a_redirect_to_a_private_address_is_not_followed(
    client_with_key, receiver, private_listener, private_target
):
    target = private_listener.url if private_target == "listener" else private_target
    receiver.replies = [(307, {"Location": target})]
    only_rule("margin_below")
    WebhookEndpoint.objects.create(url=receiver.url)
    losing_customer(client_with_key)
    alerts_evaluate()

    assert alert_deliver(delivery_id=AlertDelivery.objects.get().pk, last_attempt=False) == "failed"

    assert len(receiver.requests) == 1
    assert private_listener.requests == []
    assert "refused" in AlertDelivery.objects.get().last_error


@pytest.mark.django_db
def test_alerts_are_listed_in_the_admin(staff_client, client_with_key):
    only_rule("margin_below")
    losing_customer(client_with_key)
    alerts_evaluate()

    response = staff_client.get("/admin/alerts/alert/")

    assert response.status_code == 200
    assert "customer:duo" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_two_evaluations_at_once_store_and_send_one_alert(client_with_key, receiver):
    only_rule("margin_below")
    WebhookEndpoint.objects.create(url=receiver.url)
    losing_customer(client_with_key)
    start = threading.Barrier(2)
    created: list[int] = []

    def evaluate() -> None:
        from django.db import connection

        start.wait()
        try:
            created.append(len(alerts_evaluate()))
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(created) == [0, 1]
    assert Alert.objects.count() == 1
    assert AlertDelivery.objects.count() == 1
