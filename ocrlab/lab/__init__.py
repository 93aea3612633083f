"""What notebooks use: widgets, page views, analysis, plots, reports.

Needs the ``notebooks`` extra; nothing on the OCR path imports this package
(the pipeline imports :mod:`ocrlab.lab.widgets` only when a live view is shown).
"""
