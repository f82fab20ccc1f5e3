"""Inputs: one sub-package per protocol; each hands ReadingBatches to the pipeline."""
