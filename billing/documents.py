"""An invoice as a document: the API's JSON body, and the CSV and PDF made from that body (so
all three show the same figures)."""

import csv
import io

from billing.invoices import Draft
from billing.models import Invoice
from billing.money import plain, text


def _time(moment) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _line(line, currency: str) -> dict:
    return {
        "description": line.description,
        "quantity": plain(line.quantity),
        "unit": line.unit,
        "unitPrice": plain(line.unit_price),
        "amount": text(line.amount, currency),
    }


def invoice_body(invoice: Invoice) -> dict:
    currency = invoice.currency
    return {
        "number": invoice.number,
        "tenant": invoice.tenant_slug,
        "status": invoice.status,
        "periodStart": _time(invoice.period_start),
        "periodEnd": _time(invoice.period_end),
        "currency": currency,
        "lines": [_line(line, currency) for line in invoice.lines.all()],
        "subtotal": text(invoice.subtotal, currency),
        "total": text(invoice.total, currency),
        "issuedAt": _time(invoice.issued_at),
    }


def draft_body(draft: Draft) -> dict:
    currency = draft.currency
    return {
        "number": None,
        "tenant": draft.tenant.slug,
        "status": "draft",
        "periodStart": _time(draft.period_start),
        "periodEnd": _time(draft.period_end),
        "currency": currency,
        "lines": [_line(line, currency) for line in draft.lines],
        "subtotal": text(draft.subtotal, currency),
        "total": text(draft.total, currency),
        "issuedAt": None,
    }


CSV_COLUMNS = ("description", "quantity", "unit", "unit_price", "amount", "currency")


def as_csv(body: dict) -> bytes:
    """The lines, then a subtotal row and a total row (the JSON's figures, as written)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    currency = body["currency"]
    for line in body["lines"]:
        writer.writerow([line["description"], line["quantity"], line["unit"], line["unitPrice"],
                         line["amount"], currency])  # fmt: skip
    writer.writerow(["Subtotal", "", "", "", body["subtotal"], currency])
    writer.writerow(["Total", "", "", "", body["total"], currency])
    return out.getvalue().encode()


def _latin1(value: str) -> str:
    """The PDF's built-in font has Latin-1 only: anything else becomes '?'."""
    return value.encode("latin-1", "replace").decode("latin-1")


def _fitted_cell(pdf, width: float, value: str, align: str, size: float = 9) -> None:
    """A table cell whose text is made smaller (down to 6 pt) rather than run into the next."""
    while size > 6 and pdf.get_string_width(value) > width - 2:
        size -= 0.5
        pdf.set_font_size(size)
    pdf.cell(width, 6, value, align=align)
    pdf.set_font_size(9)


def as_pdf(body: dict, tenant_name: str = "") -> bytes:
    """A one-page (or more) A4 invoice: header, period, lines table, subtotal and total."""
    from fpdf import FPDF  # imported here: only PDF downloads need it

    draft = body["status"] == "draft"
    pdf = FPDF(format="A4")
    pdf.set_title(body["number"] or "Upcoming invoice")
    pdf.set_author("Gantry")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    title = "Upcoming invoice (draft, not final)" if draft else f"Invoice {body['number']}"
    pdf.cell(0, 10, _latin1(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    who = body["tenant"] + (f" ({tenant_name})" if tenant_name else "")
    facts = [
        ("Tenant", who),
        ("Period", f"{body['periodStart'][:10]} to {body['periodEnd'][:10]} (UTC, end exclusive)"),
        ("Currency", body["currency"]),
    ]
    if body["issuedAt"]:
        facts.append(("Issued", body["issuedAt"].replace("T", " ").replace("Z", " UTC")))
    for label, value in facts:
        pdf.cell(30, 6, label + ":")
        pdf.cell(0, 6, _latin1(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    widths = (92, 24, 28, 20, 26)  # the 190 mm between A4's margins
    headers = ("Description", "Quantity", "Unit", "Unit price", "Amount")
    pdf.set_font("Helvetica", "B", 9)
    pdf.set_fill_color(235, 235, 235)
    for width, header in zip(widths, headers, strict=True):
        align = "L" if header in ("Description", "Unit") else "R"
        pdf.cell(width, 7, header, border="B", align=align, fill=True)
    pdf.ln()
    pdf.set_font("Helvetica", "", 9)
    for line in body["lines"]:
        values = (line["description"], line["quantity"], line["unit"], line["unitPrice"],
                  line["amount"])  # fmt: skip
        for width, header, value in zip(widths, headers, values, strict=True):
            align = "L" if header in ("Description", "Unit") else "R"
            _fitted_cell(pdf, width, _latin1(value), align)
        pdf.ln()
    pdf.ln(2)
    for label, value, style in (("Subtotal", body["subtotal"], ""),
                                ("Tax", "none", ""),
                                ("Total", body["total"], "B")):  # fmt: skip
        pdf.set_font("Helvetica", style, 10)
        pdf.cell(sum(widths[:-1]), 7, label, align="R")
        shown = value if value == "none" else f"{body['currency']} {value}"
        pdf.cell(widths[-1], 7, shown, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font("Helvetica", "I", 8)
    note = (
        "Amounts are quantity x unit price, rounded half-up to the currency's minor unit. "
        "1 GB = 10^9 bytes. "
    )
    note += (
        "A draft: the running month so far, not a bill."
        if draft
        else "This invoice is final; corrections are issued as credit notes."
    )
    pdf.multi_cell(0, 4, note)
    return bytes(pdf.output())
