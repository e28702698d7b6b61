"""Reading a source page's job tables in tests: each list's headings and, per row (by its
``data-job-id``), the text of each cell under its heading."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class JobTable:
    """One list's table: its headings and its rows' cells as text."""

    headers: list[str] = field(default_factory=list)
    #: job id -> cells as text, in heading order
    rows: dict[str, list[str]] = field(default_factory=dict)
    #: job id -> the row's HTML
    raw: dict[str, str] = field(default_factory=dict)

    def cell(self, job_id: str, header: str) -> str:
        assert job_id in self.rows, (job_id, list(self.rows))
        assert header in self.headers, (header, self.headers)
        return self.rows[job_id][self.headers.index(header)]

    def raw_row(self, job_id: str) -> str:
        return self.raw[job_id]

    def columns(self) -> dict[str, list[str]]:
        """Each heading's cells, top to bottom."""
        return {h: [cells[i] for cells in self.rows.values()] for i, h in enumerate(self.headers)}


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.table = JobTable()
        self.depth = 0  # <td>/<th> nesting (cells hold no tables)
        self.text: list[str] | None = None
        self.row_id: str | None = None
        self.cells: list[str] = []
        self.in_head = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "thead":
            self.in_head = True
        elif tag == "tr" and not self.in_head:
            self.row_id = dict(attrs).get("data-job-id")
            self.cells = []
        elif tag in ("td", "th"):
            self.text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "thead":
            self.in_head = False
        elif tag in ("td", "th") and self.text is not None:
            value = " ".join("".join(self.text).split())
            if self.in_head:
                self.table.headers.append(value)
            else:
                self.cells.append(value)
            self.text = None
        elif tag == "tr" and not self.in_head and self.row_id is not None:
            self.table.rows[self.row_id] = self.cells
            self.row_id = None

    def handle_data(self, data: str) -> None:
        if self.text is not None:
            self.text.append(data)


def section(html: str, name: str) -> str:
    """The HTML of one list's card (``id="list-<name>"``)."""
    start = html.index(f'id="list-{name}"')
    end = html.find("</section>", start)
    return html[start:end]


def list_table(html: str, name: str) -> JobTable:
    """The table of one list of a source page."""
    part = section(html, name)
    table_html = part[part.index('<table class="jobs">') : part.index("</table>")]
    parser = _Parser()
    parser.feed(table_html)
    table = parser.table
    for match in re.finditer(r'<tr [^>]*data-job-id="([^"]*)".*?</tr>', table_html, re.S):
        table.raw[match.group(1)] = match.group(0)
    return table
