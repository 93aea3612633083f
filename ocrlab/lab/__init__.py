"""The lab: what the notebooks use to measure and explain runs (bench, analysis, plots,
report, accuracy, corpus, degradations, sweeps, widgets). Needs the ``notebooks`` extra
for pandas / matplotlib / papermill; nothing on the OCR path imports this package."""
