"""Analyses over result files: the claim (FLOPs vs fragmentation) and the guideline tables."""
