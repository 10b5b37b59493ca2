"""A table-QA set generated from one seed: the same two tables (travel allowances per city, travel
budgets per department and quarter) written as a PDF, a .docx, an .xlsx (and, for the speed bench, a
.pptx, .csv, .html and .md), with questions whose answer is one cell.

Used by scripts/table_eval.py (answers with tables as Markdown vs as plain extracted text) and
scripts/format_bench.py (ingest speed per format). Nothing is downloaded; the writers are the same
libraries the parsers read with (reportlab writes the PDF).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

CITIES = ["Beijing", "Shanghai", "Guangzhou", "Shenzhen", "Chengdu", "Hangzhou", "Wuhan", "Nanjing", "Xi'an",
          "Chongqing", "Tianjin", "Suzhou", "Changsha", "Zhengzhou", "Qingdao", "Dalian", "Xiamen", "Ningbo",
          "Kunming", "Harbin", "Jinan", "Fuzhou", "Hefei", "Shenyang", "Nanning", "Guiyang", "Lanzhou",
          "Taiyuan", "Nanchang", "Shijiazhuang", "Urumqi", "Hohhot", "Haikou", "Yinchuan", "Xining", "Lhasa"]
ALLOWANCE_COLUMNS = ["City", "Tier", "Hotel cap per night (CNY)", "Daily meal allowance (CNY)",
                     "Taxi limit per day (CNY)", "Incidentals per day (CNY)"]
QUESTION_OF_COLUMN = {
    2: "What is the hotel cap per night in {key}?",
    3: "What is the daily meal allowance in {key}?",
    4: "What is the taxi limit per day in {key}?",
    5: "How much are the incidentals per day in {key}?",
}
DEPARTMENTS = ["Sales", "Marketing", "Engineering", "Finance", "Legal", "Operations", "Support", "Research"]
BUDGET_COLUMNS = ["Department", "Q1 budget (kCNY)", "Q2 budget (kCNY)", "Q3 budget (kCNY)", "Q4 budget (kCNY)"]

ALLOWANCE_CAPTION = "Table 1: Travel allowances by city"
BUDGET_CAPTION = "Table 2: Travel budget by department and quarter"
INTRO = ("Northwind Trading pays travel costs up to the limits below. A traveller who spends more pays the "
         "difference, unless a director approved the expense in writing before the trip.")


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answer: str  # the cell's text
    key: str  # the row's first cell (city or department): a passage that answers holds both
    others: tuple[str, ...] = ()  # the row's other numbers: an answer naming one of them did not pick the cell


@dataclass(frozen=True)
class TableSet:
    allowances: list[list[str]]  # header first
    budgets: list[list[str]]
    questions: list[Question]


def _distinct(rng: random.Random, low: int, high: int, step: int, n: int) -> list[int]:
    return rng.sample(range(low, high, step), n)


def make_set(seed: int = 18) -> TableSet:
    rng = random.Random(seed)
    n = len(CITIES)
    columns = [_distinct(rng, 305, 995, 5, n), _distinct(rng, 61, 199, 1, n), _distinct(rng, 52, 298, 2, n),
               _distinct(rng, 21, 97, 1, n)]
    allowances = [ALLOWANCE_COLUMNS] + [[city, f"Tier {1 + i * 4 // n}"] + [str(col[i]) for col in columns]
                                        for i, city in enumerate(CITIES)]
    values = _distinct(rng, 101, 999, 1, len(DEPARTMENTS) * 4)
    budgets = [BUDGET_COLUMNS] + [[dept] + [str(values[d * 4 + q]) for q in range(4)] for d, dept in enumerate(DEPARTMENTS)]
    questions = [Question(f"a{r}-{c}", template.format(key=row[0]), row[c], row[0],
                          tuple(v for k, v in enumerate(row[2:], 2) if k != c))
                 for r, row in enumerate(allowances[1:], 1) for c, template in QUESTION_OF_COLUMN.items()]
    questions += [Question(f"b{r}-{q}", f"What is the {row[0]} department's travel budget for Q{q}?", row[q], row[0],
                           tuple(v for k, v in enumerate(row[1:], 1) if k != q))
                  for r, row in enumerate(budgets[1:], 1) for q in range(1, 5)]
    return TableSet(allowances, budgets, questions)


def picks_the_cell(answer: str, question: Question) -> bool:
    """The answer names the cell's value and none of the row's other numbers (an answer that
    repeats the whole row has not read the table)."""
    import re

    numbers = set(re.findall(r"\d+", answer.replace(",", "")))
    return question.answer in numbers and not numbers & set(question.others)


# ------------------------------------------------------------------ writers
def write_pdf(tables: TableSet, path: Path) -> Path:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    grid = TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.black), ("FONTSIZE", (0, 0), (-1, -1), 8),
                       ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold")])
    story = [Paragraph("Travel policy", styles["Heading1"]), Paragraph(INTRO, styles["BodyText"]), Spacer(1, 8)]
    for caption, rows in ((ALLOWANCE_CAPTION, tables.allowances), (BUDGET_CAPTION, tables.budgets)):
        story += [Paragraph(caption, styles["Heading3"]), Table(rows, repeatRows=1, style=grid), Spacer(1, 12)]
    SimpleDocTemplate(str(path), pagesize=A4, invariant=1, title="Travel policy").build(story)
    return path


def write_docx(tables: TableSet, path: Path) -> Path:
    import docx

    d = docx.Document()
    d.add_heading("Travel policy", level=1)
    d.add_paragraph(INTRO)
    for caption, rows in ((ALLOWANCE_CAPTION, tables.allowances), (BUDGET_CAPTION, tables.budgets)):
        d.add_heading(caption, level=2)
        table = d.add_table(rows=len(rows), cols=len(rows[0]))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                table.cell(r, c).text = text
    d.save(str(path))
    return path


def write_xlsx(tables: TableSet, path: Path) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "Allowances"
    for title, rows in (("Allowances", tables.allowances), ("Budgets", tables.budgets)):
        sheet = book[title] if title in book.sheetnames else book.create_sheet(title)
        for row in rows:
            sheet.append([int(c) if c.isdigit() else c for c in row])
    book.save(str(path))
    return path


def write_csv(tables: TableSet, path: Path) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(tables.allowances)
    return path


def write_pptx(tables: TableSet, path: Path) -> Path:
    from pptx import Presentation
    from pptx.util import Inches, Pt

    deck = Presentation()
    for caption, rows in ((ALLOWANCE_CAPTION, tables.allowances), (BUDGET_CAPTION, tables.budgets)):
        for start in range(1, len(rows), 12):  # a slide holds a dozen rows
            part = [rows[0]] + rows[start : start + 12]
            slide = deck.slides.add_slide(deck.slide_layouts[5])
            slide.shapes.title.text = caption
            table = slide.shapes.add_table(len(part), len(part[0]), Inches(0.3), Inches(1.5), Inches(9.4), Inches(5)).table
            for r, row in enumerate(part):
                for c, text in enumerate(row):
                    table.cell(r, c).text = text
                    table.cell(r, c).text_frame.paragraphs[0].runs[0].font.size = Pt(9)
    deck.save(str(path))
    return path


def _html_table(caption: str, rows: list[list[str]]) -> str:
    from html import escape

    head = "".join(f"<th>{escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
    return f"<table><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_html(tables: TableSet, path: Path) -> Path:
    path.write_text(f"<!DOCTYPE html><html><head><title>Travel policy</title><script>var tracking = 1;</script></head>"
                    f"<body><nav>Home | Policies</nav><h1>Travel policy</h1><p>{INTRO}</p>"
                    f"<h2>Allowances</h2>{_html_table(ALLOWANCE_CAPTION, tables.allowances)}"
                    f"<h2>Budgets</h2>{_html_table(BUDGET_CAPTION, tables.budgets)}</body></html>", encoding="utf-8")
    return path


def write_markdown(tables: TableSet, path: Path) -> Path:
    def md(rows):
        return "\n".join(["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
                         + ["| " + " | ".join(r) + " |" for r in rows[1:]])

    path.write_text(f"# Travel policy\n\n{INTRO}\n\n## {ALLOWANCE_CAPTION}\n\n{md(tables.allowances)}\n\n"
                    f"## {BUDGET_CAPTION}\n\n{md(tables.budgets)}\n", encoding="utf-8")
    return path


WRITERS = {"pdf": write_pdf, "docx": write_docx, "xlsx": write_xlsx, "csv": write_csv, "pptx": write_pptx,
           "html": write_html, "md": write_markdown}


def write(tables: TableSet, folder: Path, formats: list[str]) -> dict[str, Path]:
    """One file per format, all named travel_policy.<format>."""
    folder.mkdir(parents=True, exist_ok=True)
    return {fmt: WRITERS[fmt](tables, folder / f"travel_policy.{fmt}") for fmt in formats}


# ------------------------------------------------------------------ the plain-text baseline
def plain_text(fmt: str, path: Path) -> str:
    """What a plain text extractor gives for the file (the baseline the Markdown tables are compared
    with): a PDF's text layer by pypdf (this project before tables); a .docx's paragraphs and then
    each table cell on its own line (python-docx, as docx2txt does); an .xlsx's rows as lines of
    space-separated values (the header once, at the top of each sheet)."""
    if fmt == "pdf":
        from pypdf import PdfReader

        return "\n\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)
    if fmt == "docx":
        import docx
        from docx.table import Table

        lines = []
        for item in docx.Document(str(path)).iter_inner_content():
            if isinstance(item, Table):
                lines += [cell.text for row in item.rows for cell in row.cells]
            else:
                lines.append(item.text)
        return "\n".join(line for line in lines if line.strip())
    if fmt == "xlsx":
        import openpyxl

        book = openpyxl.load_workbook(str(path), read_only=True)
        lines = []
        for sheet in book.worksheets:
            lines.append(sheet.title)
            lines += [" ".join("" if v is None else str(v) for v in row) for row in sheet.iter_rows(values_only=True)]
        book.close()
        return "\n".join(lines)
    raise ValueError(f"no plain-text baseline for {fmt}")
