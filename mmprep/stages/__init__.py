"""Stage modules. Every module below this package is imported by :func:`mmprep.stage.discover`.

One package per modality; a module per stage (or a few closely related ones). Import heavy
libraries inside functions or in ``setup()`` so that listing stages stays fast.
"""
