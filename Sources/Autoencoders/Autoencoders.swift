// Module Autoencoders: see ../../README.md and DESIGN.md.
