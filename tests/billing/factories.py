from typing import Any

from billing.plans.models import PlanVersion
from billing.plans.selectors import plan_version_current
from billing.plans.services import plans_load


def plan_load(code: str = "plan", currency: str = "USD", **fields: Any) -> PlanVersion:
    """Load one plan through the same path as `manage.py load_plans`."""
    plans_load(
        document={"plans": [{"code": code, "name": code.title(), "currency": currency, **fields}]}
    )
    version = plan_version_current(
        plan_id=PlanVersion.objects.get(plan__code=code, version=1).plan_id
    )
    assert version is not None
    return version
