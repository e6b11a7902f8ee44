"""Reads of analytics, the unit economics: margins (margins.py), premium break-even
(premium.py), the cost levers (savings.py), the admin dashboard's data (dashboard.py), and
the invoices still without their breakdown (reconciliations.py)."""

from billing.analytics.selectors.reconciliations import invoices_unreconciled

__all__ = ["invoices_unreconciled"]
