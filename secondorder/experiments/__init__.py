"""Drivers that reproduce a paper's table or figure end to end (``make reproduce-*``)."""
