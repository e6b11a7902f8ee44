from typing import Any

from django.contrib import admin
from django.http import HttpRequest


class FactsAdmin(admin.ModelAdmin):
    """Facts (events, outcomes) arrive through the API and are never edited: operators
    look, filter and search, but do not add, change or delete them here."""

    # A count(*) over millions of rows on every page is not worth it.
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
