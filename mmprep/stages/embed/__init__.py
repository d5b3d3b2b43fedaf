"""The ``embed`` pipeline stage (models live in :mod:`mmprep.embed`)."""
