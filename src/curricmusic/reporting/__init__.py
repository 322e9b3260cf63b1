"""Pages and plots made from result dictionaries: report.html/.md, novelty and compare pages.

Reporting reads plain dictionaries (``results.json``, ``novelty.json``) and writes files; it
computes no statistics of its own.
"""
