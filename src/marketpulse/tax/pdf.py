"""IRS Form 8949 as a filled PDF (fpdf2), from the report's Form 8949 lines (the CSV, so the two always agree).

Laid out as the form is: Part I (short-term) and Part II (long-term), each page holding at most 14 lines with the
columns (a) description, (b) date acquired, (c) date sold, (d) proceeds, (e) cost basis, (f) code, (g) adjustment,
(h) gain or loss, and line 2's totals for that page. Digital assets not reported on a Form 1099-B are box C
(short-term) and box F (long-term). A line whose basis is unknown says so in its description (`(no basis)`).
Text is Latin-1 (the PDF core fonts): anything else is replaced by `?`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal

from fpdf import FPDF

LINES_PER_PAGE = 14
PARTS = (
    ("short", "Part I", "Short-Term. Transactions involving capital assets you held 1 year or less",
     "(C) Short-term transactions not reported to you on Form 1099-B"),
    ("long", "Part II", "Long-Term. Transactions involving capital assets you held more than 1 year",
     "(F) Long-term transactions not reported to you on Form 1099-B"),
)
COLUMNS = (("(a) Description of property", 78), ("(b) Date acquired", 26), ("(c) Date sold", 26),
           ("(d) Proceeds", 30), ("(e) Cost basis", 30), ("(f) Code", 14), ("(g) Adjustment", 22),
           ("(h) Gain or (loss)", 30))


def form_8949_pdf(form_csv: str, *, year: int, name: str) -> bytes:
    """The PDF of a Form 8949 CSV (`csv_formats.FORM_8949_COLUMNS`): every line, paged 14 to a part's page."""
    rows = list(csv.DictReader(io.StringIO(form_csv)))
    pdf = FPDF(orientation="L", unit="mm", format="Letter")
    pdf.set_auto_page_break(False)
    pdf.set_title(f"Form 8949 ({year})")
    pdf.set_author("marketpulse")
    for term, part, title, box in PARTS:
        lines = [r for r in rows if r["term"] == term]
        pages = [lines[i:i + LINES_PER_PAGE] for i in range(0, len(lines), LINES_PER_PAGE)] or [[]]
        for number, page in enumerate(pages, 1):
            _page(pdf, year, name, part, title, box, page, number, len(pages))
    return bytes(pdf.output())


def _text(value: str) -> str:
    return value.encode("latin-1", "replace").decode("latin-1")


def _page(pdf: FPDF, year: int, name: str, part: str, title: str, box: str, lines: Sequence[dict[str, str]],
          number: int, pages: int) -> None:
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(0, 8, f"Form 8949 ({year})", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    pdf.cell(0, 5, "Sales and Other Dispositions of Capital Assets (Department of the Treasury, Internal Revenue "
             "Service)", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 5, _text(f"Name(s) shown on return: {name}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 6, f"{part}  {title}  (page {number} of {pages})", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    pdf.cell(0, 5, f"[X] {box}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)
    pdf.set_font("Helvetica", "B", 8)
    for label, width in COLUMNS:
        pdf.cell(width, 7, label, border=1, align="C")
    pdf.ln()
    pdf.set_font("Helvetica", "", 8)
    totals = [Decimal(0), Decimal(0), Decimal(0)]
    for index in range(LINES_PER_PAGE):
        line = lines[index] if index < len(lines) else None
        values = ("", "", "", "", "", "", "", "")
        if line is not None:
            values = (_text(line["description"]), line["date_acquired"], line["date_sold"], line["proceeds"],
                      line["cost_basis"], "", "", line["gain_loss"])
            totals[0] += Decimal(line["proceeds"])
            totals[1] += Decimal(line["cost_basis"])
            totals[2] += Decimal(line["gain_loss"])
        for (_label, width), value in zip(COLUMNS, values, strict=True):
            pdf.cell(width, 7, value, border=1, align="R" if value[:1].isdigit() or value[:1] == "-" else "L")
        pdf.ln()
    pdf.set_font("Helvetica", "B", 8)
    label_width = sum(width for _label, width in COLUMNS[:3])
    pdf.cell(label_width, 7, "2 Totals (add the amounts in columns (d), (e), (g) and (h))", border=1)
    for text, (_label, width) in zip((str(totals[0]), str(totals[1]), "", "", str(totals[2])), COLUMNS[3:],
                                     strict=True):
        pdf.cell(width, 7, text, border=1, align="R")
    pdf.ln()
