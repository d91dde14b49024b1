"""Form 8949 as a PDF, read back with pypdf: every line on its part's page, 14 to a page, each page's totals."""

from __future__ import annotations

import io
from decimal import Decimal

from pypdf import PdfReader

from marketpulse.tax.core import Method
from marketpulse.tax.csv_formats import form_8949_csv
from marketpulse.tax.lots import compute
from marketpulse.tax.pdf import form_8949_pdf
from tax.helpers import tx


def pages(data: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


def test_sixteen_short_lines_take_two_pages_and_long_lines_their_own_part() -> None:
    history = [tx("2023-01-02", "buy", "ETH", "1", "1000", account="kr")]
    history += [tx(f"2024-02-{day:02d}", "buy", "BTC", "1", str(100 * day)) for day in range(1, 17)]
    history += [tx("2024-06-01", "sell", "BTC", "16", "5000", fee="16"), tx("2024-06-02", "sell", "ETH", "1", "3000",
                                                                            account="kr")]
    disposals = compute(history, Method.FIFO).disposals
    text = pages(form_8949_pdf(form_8949_csv(disposals), year=2024, name="Jane Doe"))
    assert len(text) == 3  # Part I: 14 + 2 lines; Part II: 1
    assert all("Form 8949 (2024)" in page and "Jane Doe" in page for page in text)
    assert "Part I" in text[0] and "page 1 of 2" in text[0] and "(C) Short-term" in text[0]
    assert "1 BTC" in text[0] and "2024-02-01" in text[0] and "2024-02-14" in text[0] and "2024-02-15" not in text[0]
    # Page 1: 14 lines of proceeds 4,999 each (5,000 less a 1 USD fee share); basis 100 + … + 1,400 = 10,500.
    assert "69986.00" in text[0] and "10500.00" in text[0] and str(Decimal("69986.00") - 10500) in text[0]
    assert "2024-02-16" in text[1] and "page 2 of 2" in text[1]
    assert "Part II" in text[2] and "(F) Long-term" in text[2] and "1 ETH" in text[2] and "2000.00" in text[2]


def test_an_empty_year_is_still_a_form() -> None:
    text = pages(form_8949_pdf(form_8949_csv([]), year=2025, name="x@example.com"))
    assert len(text) == 2 and "Part I" in text[0] and "Part II" in text[1]
