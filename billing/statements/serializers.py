"""What the statement endpoints answer (for the OpenAPI schema: the views build the
bodies from the selectors' records)."""

from rest_framework import serializers

from billing.invoicing.serializers import (
    CreditNoteSerializer,
    InvoiceSerializer,
    StoredInvoiceLineSerializer,
)


class StatementLineSerializer(StoredInvoiceLineSerializer):
    position = serializers.IntegerField(help_text="Outcomes name the line they are billed on.")
    outcome_type = serializers.CharField()
    feature = serializers.CharField(allow_null=True, help_text="A pass-through line's feature.")
    late = serializers.BooleanField(help_text="Late usage or credit of an earlier period.")


class OutcomeTypeSerializer(serializers.Serializer):
    type = serializers.CharField()
    outcomes = serializers.IntegerField(help_text="Billed on this invoice, included ones too.")
    included = serializers.IntegerField()
    amount = serializers.IntegerField(help_text="Minor units: the sum of its lines.")


class StatementSeatSerializer(serializers.Serializer):
    user = serializers.CharField(help_text="The end user (premium seat).")
    active_days = serializers.IntegerField(help_text="Days (UTC) with premium-tier calls.")
    first_day = serializers.DateField()
    last_day = serializers.DateField()


class BilledOutcomeSerializer(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.CharField()
    succeeded_at = serializers.DateTimeField()
    value = serializers.CharField(allow_null=True)
    value_currency = serializers.CharField()
    fee = serializers.CharField(help_text="Exact, invoice currency: what it adds to its line.")
    allowance = serializers.ChoiceField(
        [
            "included",
            "unit",
            "tier",
            "volume",
            "package",
            "percentage",
            "percentage_tier",
            "dimension",
        ],
        help_text="How its line bills it: in the included allowance, at the unit price, in "
        "a graduated tier, at the volume tier's price, in a package (the block's price on "
        "its first outcome), as a percentage of its value, in the tiers of a graduated "
        "percentage (the rate of each tier its value covers), or at the price of its "
        "dimension's value (a price by dimension).",
    )
    line = serializers.IntegerField(
        help_text="The position of the line it is billed on (a graduated percentage: the "
        "tier its value starts in; a value that crosses a bound pays each tier its part)."
    )
    block = serializers.IntegerField(allow_null=True, help_text="A package's block, from 1.")
    fx_rate_missing = serializers.BooleanField(
        help_text="Its value is in a currency without an FX rate then: it was billed nothing."
    )
    status_now = serializers.CharField(
        help_text="succeeded; or reversed since, credited on a later invoice."
    )
    dispute = serializers.CharField(
        help_text="Its latest dispute: open, accepted (reversed, credited on a later "
        "invoice), rejected; empty: none."
    )


class StatementSerializer(serializers.Serializer):
    invoice = InvoiceSerializer(help_text="Without its lines (below).")
    lines = StatementLineSerializer(many=True)
    outcome_types = OutcomeTypeSerializer(many=True)
    seats = StatementSeatSerializer(many=True, help_text="Premium seats seen in the period.")
    credit_notes = CreditNoteSerializer(many=True, help_text="Given back on it since.")
    credited = serializers.IntegerField(help_text="Minor units: the credit notes' total.")
    outcomes = BilledOutcomeSerializer(
        many=True, help_text="One page (limit, offset) of the billed outcomes, by type."
    )
    outcomes_total = serializers.IntegerField()
    lines_total = serializers.IntegerField(help_text="Minor units; equals the invoice's total.")
