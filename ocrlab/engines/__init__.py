"""The OCR engines: the Tesseract binary and pytesseract (:mod:`.tesseract`, a leaf),
tesserocr's in-process libtesseract (:mod:`.tesserocr`), fakes for tests
(:mod:`.fakes`), and the registry that resolves an engine by name (:mod:`.registry`)."""
