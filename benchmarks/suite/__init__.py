"""The evaluation suite of issue 8: cases unlike the demo data, and the runner that scores them.

``python benchmarks/eval_suite.py`` runs it; :func:`benchmarks.suite.run.run_suite` is the same
from Python. See ``benchmarks/suite/README.md`` for each case's source and ground truth.
"""
