"""Moving models' content types between apps, for the migrations that split billing into
apps (each app's 0001_initial). A content type is renamed in place, so what points at it
(permissions granted to operators, audit-log entries) follows; where the target already
has one (a database that ran the new apps before), the old one is left alone."""

from collections.abc import Callable
from typing import Any


def content_types_move(
    from_label: str, to_label: str, models: list[str]
) -> Callable[[Any, Any], None]:
    def move(apps: Any, schema_editor: Any) -> None:
        content_type = apps.get_model("contenttypes", "ContentType")
        taken = set(
            content_type.objects.filter(app_label=to_label, model__in=models).values_list(
                "model", flat=True
            )
        )
        content_type.objects.filter(app_label=from_label, model__in=models).exclude(
            model__in=taken
        ).update(app_label=to_label)

    return move
