"""`python -m compact_proofs.generator` is the `compact-proofs` command."""

from compact_proofs.generator import main

main()
