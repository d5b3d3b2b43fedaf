"""Text library code used by the ``text.*`` stages: encoding detection, cleaning, scripts, tokenizers, vocabularies.

Nothing here downloads anything: tokenizers and word lists come from installed packages only.
"""
