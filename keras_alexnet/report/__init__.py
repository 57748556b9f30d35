"""bin/report: the paper's figures from any training run.

figures.py draws the error curves, Figure 3's conv1 kernels and Figure 4's nearest
neighbours in fc7 space (streamed by neighbours.py), has top5.py draw Figure 4's left
half (validation images and their five most probable classes) and writes report.json.
"""
