"""FX rates: dated, loadable from CSV, and a missing rate is unknown rather than zero."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from billing.invoicing.fx import fx_convert
from billing.invoicing.models import FxRate

pytestmark = pytest.mark.django_db

RATES = """currency,effective_from,usd_per_unit
EUR,2026-01-01T00:00:00+00:00,1.10
EUR,2026-07-01T00:00:00+00:00,1.20
JPY,2026-01-01T00:00:00+00:00,0.0065
"""


def load(tmp_path, text):
    path = tmp_path / "rates.csv"
    path.write_text(text)
    call_command("load_fx_rates", str(path))


def test_conversion_uses_the_rate_valid_at_the_moment(tmp_path):
    load(tmp_path, RATES)
    march, august = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 8, 1, tzinfo=UTC)
    assert fx_convert(amount=Decimal(100), source="EUR", target="USD", at=march) == Decimal("110")
    assert fx_convert(amount=Decimal(100), source="EUR", target="USD", at=august) == Decimal("120")
    # EUR to JPY through USD: 100 x 1.20 / 0.0065
    assert fx_convert(amount=Decimal(100), source="EUR", target="JPY", at=august) == Decimal(
        "18461.538461538462"
    )


def test_a_missing_rate_is_none_not_zero(tmp_path):
    load(tmp_path, RATES)
    before_any = datetime(2025, 6, 1, tzinfo=UTC)
    assert fx_convert(amount=Decimal(1), source="EUR", target="USD", at=before_any) is None
    assert fx_convert(amount=Decimal(1), source="GBP", target="USD", at=before_any) is None
    assert fx_convert(amount=Decimal(5), source="GBP", target="GBP", at=before_any) == 5


def test_loading_again_changes_nothing(tmp_path, capsys):
    load(tmp_path, RATES)
    load(tmp_path, RATES)
    assert FxRate.objects.count() == 3
    assert capsys.readouterr().out.splitlines()[-1] == "0 rate(s) new or changed"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("currency,when,rate\nEUR,2026-01-01T00:00:00+00:00,1\n", "line 1"),
        (RATES + "XXQ,2026-01-01T00:00:00+00:00,1\n", "line 5"),
        (RATES + "GBP,yesterday,1\n", "line 5"),
        (RATES + "GBP,2026-01-01T00:00:00,1\n", "line 5"),
        (RATES + "GBP,2026-01-01T00:00:00+00:00,-1\n", "line 5"),
        (RATES + "GBP,2026-01-01T00:00:00+00:00,abc\n", "line 5"),
    ],
)
def test_a_bad_file_names_the_line_and_loads_nothing(tmp_path, text, where):
    with pytest.raises(CommandError, match=where):
        load(tmp_path, text)
    assert not FxRate.objects.exists()
