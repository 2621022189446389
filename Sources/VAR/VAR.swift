// Module VAR: see ../../README.md and DESIGN.md.
