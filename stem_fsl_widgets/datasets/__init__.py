"""Synthetic, physically grounded datasets for demos, tests and benchmarks."""

from .demo import demo, region_elements, region_spectra

__all__ = ["demo", "region_elements", "region_spectra"]
