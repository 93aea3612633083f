"""What the notebooks use: corpora with ground truth, degradations, sweeps, tables and figures.

Nothing on the OCR path imports this package; it needs the ``notebooks`` extra.
"""
