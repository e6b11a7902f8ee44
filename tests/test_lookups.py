"""`field__any_of` (common/lookups.py) finds what `field__in` finds, with the values sent
as one array parameter."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.plans.models import Subscription
from common.lookups import AnyOf  # noqa: F401 -- registers field__any_of
from metering.models import Customer
from tests.billing.factories import plan_load
from tests.metering.factories import customer_create

pytestmark = pytest.mark.django_db


def test_any_of_finds_what_in_finds_with_one_parameter():
    customers = [customer_create() for _ in range(5)]
    plan = plan_load("starter").plan
    for customer in customers[:3]:
        Subscription.objects.create(customer=customer, plan=plan)
    wanted = [customers[0].pk, customers[2].pk, customers[4].pk, 10**9]
    with CaptureQueriesContext(connection) as queries:
        found = set(Customer.objects.filter(pk__any_of=wanted).values_list("pk", flat=True))
        # A foreign key, as the rating pipeline uses it.
        subscribed = set(
            Subscription.objects.filter(customer_id__any_of=wanted).values_list(
                "customer_id", flat=True
            )
        )
    assert found == set(Customer.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    assert found == {customers[0].pk, customers[2].pk, customers[4].pk}
    assert subscribed == {customers[0].pk, customers[2].pk}
    assert all("= ANY(" in query["sql"] for query in queries.captured_queries)
    assert Customer.objects.filter(pk__any_of=[]).count() == 0
