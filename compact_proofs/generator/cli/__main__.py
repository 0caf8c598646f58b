"""`python -m compact_proofs.generator.cli` is the `compact-proofs` command."""

from compact_proofs.generator.cli import main

main()
