"""Examples for integrators (examples/README.md); a package so the tests can run their code."""
