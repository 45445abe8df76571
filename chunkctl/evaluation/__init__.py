"""Evaluation against a QA set: loaders (``qa``), Chroma-faithful range metrics and statistics
(``metrics``), and the run that retrieves and scores (``run``)."""
