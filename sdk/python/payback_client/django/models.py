from django.db import models


class OutboxRecord(models.Model):
    """A record for payback, written in the backend's transaction; deleted once sent.
    One payback refused stays, with why, for someone to look at."""

    kind = models.CharField(max_length=16)  # event, outcome, reverse
    record_id = models.CharField(max_length=200)
    body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    refused_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["id"], name="payback_outbox_unsent", condition=models.Q(refused_at=None)
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.record_id}"
