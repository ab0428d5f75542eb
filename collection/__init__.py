"""Collection: build replay stores from any model and question set with vLLM.

Entry points: ``autotts collect ...``, ``python -m collection ...`` and
:func:`collection.collect.collect` from Python. See docs/collection.md.
"""
