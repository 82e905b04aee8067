"""Exceptions raised by :mod:`spectra` for bad input (it never imports ``coreaug``)."""

from __future__ import annotations


class SpectraError(ValueError):
    """Bad input to a spectra function: wrong shapes, NaN/Inf, invalid parameter names or sizes."""
