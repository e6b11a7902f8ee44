"""What the reporting views share: the reporting window and decimal strings."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers


class UsageQuerySerializer(serializers.Serializer):
    """A window [from, to): this calendar month (UTC) by default."""

    from_ = serializers.DateTimeField(required=False, help_text="Inclusive; default: month start.")
    to = serializers.DateTimeField(required=False, help_text="Exclusive; default: next month.")

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        # `from` is a Python keyword: read it into `from_`, and name it `from` in errors.
        data = {"from_": data.get("from"), "to": data.get("to")}
        try:
            return super().to_internal_value({k: v for k, v in data.items() if v is not None})
        except serializers.ValidationError as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {}
            raise serializers.ValidationError(
                {("from" if key == "from_" else key): value for key, value in detail.items()}
            ) from exc

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        month_start, next_month = calendar_month(timezone.now())
        attrs.setdefault("from_", month_start)
        attrs.setdefault("to", next_month)
        if attrs["from_"] >= attrs["to"]:
            raise serializers.ValidationError({"to": "`to` must be after `from`."})
        return attrs


def calendar_month(moment: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) holding `moment`, [start, end)."""
    moment = moment.astimezone(UTC)
    start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    return start, datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


# The analytics endpoints' window, [from, to).
WINDOW_PARAMETERS = [
    OpenApiParameter("from", datetime, description="Inclusive, ISO 8601; default: month start."),
    OpenApiParameter("to", datetime, description="Exclusive, ISO 8601; default: next month."),
]


def decimal_text(value: Decimal | None) -> str | None:
    """Money and ratios travel as decimal strings, without trailing zeros."""
    return None if value is None else f"{value.normalize():f}"
