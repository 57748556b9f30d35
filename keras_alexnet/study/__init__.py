"""The replication study: the paper's claims re-tested as variants of one baseline config, over seeds.

variants.py names each claim and the config change that tests it; runner.py trains every
(variant, seed) in its own process, resumes an interrupted study, and writes the table
(study.json, study.md) and the Figure-1-style plot (figure1.png). The paper's figures
of any single run are bin/report's (keras_alexnet/report/).
"""
