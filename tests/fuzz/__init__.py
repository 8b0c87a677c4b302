"""Fuzzing the whole pipeline with generated SMI documents (issue 7, "bad input, fuzzed").

``strategies`` generates document sets (dicts as loaded from YAML) of every
SMI kind and version plus context objects, mostly valid with a mutation step
that corrupts some of them; ``properties`` holds the checks shared by the
quick tier (``test_fuzz.py``, in the normal test run) and the long job
(``scripts/fuzz``, at least 10,000 examples per target).
"""
