// Module Metrics: see ../../README.md and DESIGN.md.
