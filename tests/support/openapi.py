"""The API's OpenAPI schema as a plain dict, generated in process (no request, no key)."""

import json
from typing import Any


def openapi_schema() -> dict[str, Any]:
    import django

    django.setup()
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(json.dumps(schema, default=str))
