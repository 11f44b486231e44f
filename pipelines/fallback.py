"""The second opinion: trafilatura's extraction, used when our own body block is thin."""

from __future__ import annotations


def trafilatura_lines(html: str, url: str | None) -> tuple[list[str], dict]:
    try:
        import trafilatura
        doc = trafilatura.bare_extraction(
            html, url=url, with_metadata=True, include_comments=False, include_tables=True,
            favor_precision=True,
        )
    except Exception:  # a broken page must not break extraction
        return [], {}
    if doc is None:
        return [], {}
    data = doc.as_dict() if hasattr(doc, "as_dict") else dict(doc)
    text = data.get("text") or ""
    return [ln for ln in text.splitlines() if ln.strip()], data
