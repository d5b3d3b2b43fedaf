"""mmprep: raw multimodal corpora -> WebDataset shards, and back into training."""

__version__ = "0.1.0"
