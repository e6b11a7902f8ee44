"""An invoice's statement as a PDF: the hosted page's sections and figures (the same
selectors, the same order), laid out with fpdf2 (pure Python: no system libraries).

The outcomes are read a chunk at a time as the pages are laid out; the document itself
is assembled in memory (a PDF's cross-reference table comes last): about 60 MB and 17 s
for 100,000 outcomes. DejaVu Sans is used where the system has it (Debian's
fonts-dejavu-core), so that any text prints; without it, the PDF core font, with the
characters it lacks replaced.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from fpdf import FPDF

from billing.money import from_minor_units
from billing.statements import selectors

_FONTS = Path("/usr/share/fonts/truetype/dejavu")
ROW = 5.0  # mm


def _exact(amount: Decimal | None) -> str:
    return "" if amount is None else f"{amount.normalize():f}"


class _Document(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(format="A4")
        self.title_text = title
        self.set_auto_page_break(auto=True, margin=15)
        self.set_title(title)
        regular, bold = _FONTS / "DejaVuSans.ttf", _FONTS / "DejaVuSans-Bold.ttf"
        if regular.exists() and bold.exists():
            self.add_font("body", "", str(regular))
            self.add_font("body", "B", str(bold))
            self.family, self.unicode = "body", True
        else:
            self.family, self.unicode = "helvetica", False

    def text_of(self, value: object) -> str:
        text = str(value)
        return text if self.unicode else text.encode("latin-1", "replace").decode("latin-1")

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(self.family, size=7)
        self.cell(0, 5, self.text_of(f"{self.title_text} · page {self.page_no()}"), align="C")

    def heading(self, text: str) -> None:
        self.ln(3)
        self.set_font(self.family, "B", 11)
        self.cell(0, 7, self.text_of(text), new_x="LMARGIN", new_y="NEXT")

    def row(self, cells: list[tuple[str, float, str]], *, bold: bool = False) -> None:
        """One table row: (text, width in mm, alignment) per cell."""
        self.set_font(self.family, "B" if bold else "", 8)
        for text, width, align in cells:
            self.cell(width, ROW, self.text_of(text)[:90], border="B", align=align)
        self.ln(ROW)


def statement_pdf(statement: selectors.Statement) -> bytes:
    invoice = statement.invoice
    currency = invoice.currency
    title = f"Statement of invoice {invoice.pk}"
    pdf = _Document(title)
    pdf.add_page()
    pdf.set_font(pdf.family, "B", 15)
    pdf.cell(0, 9, pdf.text_of(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(pdf.family, size=9)
    total = _exact(from_minor_units(invoice.total, currency))
    pdf.multi_cell(
        0,
        5,
        pdf.text_of(
            f"{invoice.customer.external_id} · {invoice.period_start:%Y-%m-%d} to "
            f"{invoice.period_end:%Y-%m-%d} (end excluded) · status {invoice.status} · "
            f"total {total} {currency}"
        ),
        new_x="LMARGIN",
        new_y="NEXT",
    )

    pdf.heading("What the invoice bills")
    pdf.row([("Line", 12, "R"), ("Description", 98, "L"), ("Quantity", 30, "R"),
             (f"Amount ({currency})", 40, "R")], bold=True)  # fmt: skip
    for line in statement.lines:
        late = " (late, from an earlier period)" if line.source_invoice_id else ""
        amount = _exact(from_minor_units(line.amount, currency))
        pdf.row([(str(line.position), 12, "R"), (line.description + late, 98, "L"),
                 (_exact(line.quantity), 30, "R"), (amount, 40, "R")])  # fmt: skip
    pdf.row([("", 12, "R"), ("Total", 98, "L"), ("", 30, "R"), (total, 40, "R")], bold=True)

    if statement.types:
        pdf.heading("Outcomes billed, by type")
        pdf.row([("Type", 80, "L"), ("Outcomes", 30, "R"), ("Of them included", 30, "R"),
                 (f"Amount ({currency})", 40, "R")], bold=True)  # fmt: skip
        for summary in statement.types:
            amount = _exact(from_minor_units(summary.amount, currency))
            pdf.row([(summary.type, 80, "L"), (str(summary.outcomes), 30, "R"),
                     (str(summary.included), 30, "R"), (amount, 40, "R")])  # fmt: skip
    if statement.seats:
        pdf.heading("Premium seats")
        pdf.row([("User", 90, "L"), ("Active days", 30, "R"), ("First", 30, "L"),
                 ("Last", 30, "L")], bold=True)  # fmt: skip
        for seat in statement.seats:
            pdf.row([(seat.user, 90, "L"), (str(seat.active_days), 30, "R"),
                     (f"{seat.first_day:%Y-%m-%d}", 30, "L"),
                     (f"{seat.last_day:%Y-%m-%d}", 30, "L")])  # fmt: skip
    if statement.credit_notes:
        pdf.heading("Credit notes")
        pdf.row([("Note", 20, "L"), ("Issued", 30, "L"), ("For", 90, "L"),
                 (f"Amount ({currency})", 40, "R")], bold=True)  # fmt: skip
        for note in statement.credit_notes:
            for line in note.lines.all():
                amount = _exact(from_minor_units(line.amount, currency))
                pdf.row([(str(note.number), 20, "L"), (f"{note.created_at:%Y-%m-%d}", 30, "L"),
                         (line.description, 90, "L"), (amount, 40, "R")])  # fmt: skip
    if statement.types:
        pdf.heading("Every outcome billed")
        header = [("Outcome", 50, "L"), ("Type", 30, "L"), ("Succeeded (UTC)", 32, "L"),
                  ("Value", 28, "R"), (f"Fee ({currency})", 20, "R"),
                  ("Billed as", 20, "L")]  # fmt: skip
        pdf.row(header, bold=True)
        for outcome in selectors.statement_outcomes(statement):
            notes = " (reversed since)" if outcome.status_now == "reversed" else ""
            if outcome.dispute:
                notes += f" (dispute {outcome.dispute})"
            value = f"{_exact(outcome.value)} {outcome.value_currency}".strip()
            billed = outcome.allowance + (f" {outcome.block}" if outcome.block else "")
            pdf.row([(outcome.id + notes, 50, "L"), (outcome.type, 30, "L"),
                     (f"{outcome.succeeded_at:%Y-%m-%d %H:%M}", 32, "L"), (value, 28, "R"),
                     (_exact(outcome.fee), 20, "R"), (billed, 20, "L")])  # fmt: skip
    return bytes(pdf.output())
