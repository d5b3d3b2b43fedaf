"""Console entry point: ``mmprep`` (see ``mmprep --help``). The commands live in :mod:`mmprep.cli`."""

from mmprep.cli import main

if __name__ == "__main__":
    main()
