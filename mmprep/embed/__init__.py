"""Precomputed embeddings: text, image and audio encoders loaded from local files only.

``mmprep.embed.models`` turns a model reference into an :class:`~mmprep.embed.base.Encoder`;
``mmprep.embed.sidecar`` writes ``OUT/embeddings/<name>/`` shards next to a finished build;
``mmprep.embed.check`` computes the image-caption retrieval sanity number.
"""
