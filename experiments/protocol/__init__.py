"""The protocol every comparison follows: seeds and intervals (``stats``), equal-budget
tuning on a validation split (``tuning``), time-to-result (``race``) and pre-registered
verdicts (``verdicts``).

At least 5 seeds (quick) or 8 (full), 95% Student-t intervals, comparisons by paired
differences across seeds, the same number of trials for every method over a search space
its configuration declares, one primary condition per claim with a practical-significance
threshold, and textbook checks kept apart from empirical evidence.
"""
