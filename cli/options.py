"""Options shared by several commands: one name, one help text, one environment variable."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

Db = Annotated[str, typer.Option("--db", envvar="CHUNKCTL_DB", help="DuckDB store file.")]
Chunkers = Annotated[
    Optional[list[str]],
    typer.Option("--chunker", "-c", envvar="CHUNKCTL_CHUNKER", metavar="SPEC",
                 help="Strategy spec 'name' or 'name:key=value,...' (repeatable; see `chunkctl chunkers`). "
                      "Default: recursive."),
]
PdfBackend = Annotated[str, typer.Option("--pdf-backend", envvar="CHUNKCTL_PDF_BACKEND",
                                         help="PDF text extraction: pdfium (fast, default) or pypdf.")]
Json = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON result on stdout.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
Model = Annotated[str, typer.Option("--embed", envvar="CHUNKCTL_EMBED", metavar="MODEL",
                                    help="Embedding model: minilm (default: int8 ONNX on the CPU, fp16 on a GPU), "
                                         "minilm-onnx, minilm-st, or a local sentence-transformers folder.")]
Device = Annotated[str, typer.Option("--device", envvar="CHUNKCTL_DEVICE",
                                     help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps.")]
