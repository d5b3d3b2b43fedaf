"""Stream mmprep shards into training: balanced across ranks and workers, seeded, resumable.

>>> from mmprep.data import ShardStream, StreamLoader, PadCollate
>>> ds = ShardStream("OUT", fields=["jpg", "mfcc.npy", "cls"], shuffle=True, seed=0)
>>> loader = StreamLoader(ds, batch_size=32, num_workers=2, collate_fn=PadCollate())
"""

from mmprep.data.collate import PadCollate
from mmprep.data.decode import DecodeError, Decoder, decode_label
from mmprep.data.loader import StreamLoader, delivered_per_worker
from mmprep.data.sources import Shard, resolve, sidecar_meta
from mmprep.data.stream import ShardStream, dist_info

__all__ = ["DecodeError", "Decoder", "PadCollate", "Shard", "ShardStream", "StreamLoader", "decode_label",
           "delivered_per_worker", "dist_info", "resolve", "sidecar_meta"]
