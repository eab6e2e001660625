"""Synthetic, physically grounded datasets for demos, tests and benchmarks."""

from .demo import chip_truth, demo, region_elements, region_spectra

__all__ = ["demo", "chip_truth", "region_elements", "region_spectra"]
