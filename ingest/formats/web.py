"""HTML with BeautifulSoup (lxml) and markdownify: scripts, styles and navigation dropped, the rest
as Markdown cut at its headings (ingest.formats.markdown), data tables as Markdown tables.

A table holding another table is page layout, not data: it is unwrapped and its cells read as text.
Every other table becomes a pipe table (ingest.formats.tables) with its <caption> on the line above, built
here rather than by markdownify, which neither escapes '|' in cells nor takes a first row of <td>
as the header.
"""
from __future__ import annotations

from pathlib import Path

from ingest.formats.markdown import sections
from ingest.formats.base import Parser
from ingest.formats.tables import cell_text, markdown_table
from rag.errors import ParseError
from rag.types import Page

DROP = ["script", "style", "noscript", "template", "nav", "iframe", "svg", "canvas", "form", "button",
        "select", "object", "embed", "head"]
# Beyond this much HTML the file is refused before parsing (a page of text is ~100 KB of HTML).
MAX_HTML_MB = 50


class HtmlParser(Parser):
    headings = True  # places are heading paths

    def parse(self, path: Path, password: str | None = None) -> list[Page]:
        size = path.stat().st_size
        if size > MAX_HTML_MB * 2**20:
            raise ParseError(f"HTML too large: {size / 2**20:.0f} MB (limit {MAX_HTML_MB} MB)")
        title, markdown = html_to_markdown(path.read_bytes())
        pages = sections(markdown, title=title)
        if not any(p.text.strip() for p in pages):
            raise ParseError("no text in the HTML once scripts, styles and navigation are removed")
        return pages


def html_to_markdown(data: bytes) -> tuple[str, str]:
    """(the <title>, the page as Markdown) without scripts, styles and navigation."""
    from bs4 import BeautifulSoup
    from markdownify import MarkdownConverter

    soup = BeautifulSoup(data, "lxml")
    title = " ".join(soup.title.get_text().split()) if soup.title else ""
    for tag in soup.find_all(DROP):
        tag.decompose()
    for tag in soup.select('[role="navigation"], [aria-hidden="true"], [hidden]'):
        tag.decompose()
    tables: list[str] = []
    for table in soup.find_all("table"):
        if table.find("table") is not None:
            continue  # layout: below
        caption = table.find("caption")
        lines = [" ".join(caption.get_text(" ").split())] if caption else []
        rows = [[cell_text(cell.get_text(" ")) for cell in tr.find_all(["th", "td"])] for tr in table.find_all("tr")]
        rows = [r for r in rows if r]
        if rows:
            lines.append(markdown_table(rows))
        marker = soup.new_tag("p")
        marker.string = f"TABLEPLACEHOLDER{len(tables)}X"
        tables.append("\n".join(line for line in lines if line))
        table.replace_with(marker)
    for tag in soup.find_all(["table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption"]):
        tag.name = "div"  # what is left of layout tables: blocks of text
    markdown = MarkdownConverter(heading_style="ATX", strip=["a", "img"], escape_misc=False).convert_soup(soup)
    for i, table in enumerate(tables):
        markdown = markdown.replace(f"TABLEPLACEHOLDER{i}X", "\n\n" + table + "\n\n")
    return title, markdown
