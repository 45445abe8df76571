"""Metadata enrichment behind one interface and one registry (``chunkctl enrichers`` lists them).

Importing this package registers every built-in enricher; ``parse_enricher("keywords:max_items=5")``
returns a configured one. ``enrich_chunks`` is the stage; ``template`` builds the embedded text.
"""
from chunkctl.enrich import llm, structure  # noqa: F401  (importing registers each enricher)
from chunkctl.enrich.base import (FIELD_ORDER, REGISTRY, EnrichResult, Enricher, Enrichment, enrich_chunks,
                                  parse_enricher)
from chunkctl.enrich.template import FORMATS

__all__ = ["FIELD_ORDER", "FORMATS", "REGISTRY", "EnrichResult", "Enricher", "Enrichment", "enrich_chunks",
           "parse_enricher"]
