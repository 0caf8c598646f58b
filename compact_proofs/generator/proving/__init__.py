"""Proof search: prover.py turns a strategy's draft (strategies/) into a certificate the checker
accepts, with the tightest claim it accepts.
"""
