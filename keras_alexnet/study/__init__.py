"""The replication study: the paper's claims re-tested as variants of one baseline config, over seeds.

variants.py names each claim and the config change that tests it; runner.py trains every
(variant, seed) in its own process, resumes an interrupted study, and writes the table
(study.json, study.md) and the Figure-1-style plot (figure1.png). report.py (bin/report)
regenerates the paper's figures from any run: curves, Figure 3's conv1 kernels, Figure 4's
nearest neighbours in fc7 space (streamed by neighbours.py).
"""
