"""payback's transactional outbox for Django backends.

Add "payback_client.django" to INSTALLED_APPS and migrate. Then record inside your own
transactions:

    from payback_client.django.outbox import outbox

    with transaction.atomic():
        ticket.resolve()
        outbox.record_outcome(type="resolution", customer=ticket.account_id,
                              status="succeeded", id=f"ticket-{ticket.pk}")

The record is a row in your database, written in your transaction: it exists only if
that transaction commits. `manage.py send_payback_outbox` (or the Celery task
`payback_client.django.tasks.send_payback_outbox`) sends the rows and deletes them once
payback has them. A sender that dies midway leaves its rows to the next run, and
payback stores a record sent twice once.
"""
