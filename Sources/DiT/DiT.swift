// Module DiT: see ../../README.md and DESIGN.md.
