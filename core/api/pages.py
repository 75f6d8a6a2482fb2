"""The few HTML pages people see: the unsubscribe confirmation, its result, link errors.

Self-contained (inline style, no scripts, no external assets) and sent with
headers that keep the link's token out of caches and Referer headers and the
page out of frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from starlette.responses import HTMLResponse

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;"
    "color:#222;line-height:1.5}h1{font-size:1.5rem}"
    "button{font-size:1rem;padding:.6rem 1.4rem;border:0;border-radius:.3rem;"
    "background:#222;color:#fff;cursor:pointer}"
)
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}


def page(
    title: str,
    *paragraphs: str,
    button: str | None = None,
    fields: Mapping[str, str] | None = None,
) -> str:
    """A small HTML page; with ``button``, a form that POSTs ``fields`` to the page's own
    URL. Every text is escaped."""
    body = "".join(f"<p>{escape(text)}</p>" for text in paragraphs)
    if button is not None:
        hidden = "".join(
            f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
            for name, value in (fields or {}).items()
        )
        body += (
            f'<form method="post">{hidden}<button type="submit">{escape(button)}</button></form>'
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def html_response(
    html: str, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> HTMLResponse:
    return HTMLResponse(html, status_code, headers={**_HEADERS, **(headers or {})})
