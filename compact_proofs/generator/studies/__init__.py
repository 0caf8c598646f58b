"""Studies and reports over many models: sweep.py and report.py (the paper's sweep), faithfulness.py
and ledger.py (where bounds are lost; `faithfulness`, `explain`), scaling.py and scaling_report.py
(the scaling study), induction.py (the induction study).
"""
