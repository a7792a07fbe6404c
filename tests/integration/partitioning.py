"""Which partition a key lands on, computed the way Kafka's Java clients do.

The worker and every input producer partition keys with murmur2 (see
``Settings.producer_config``); tests use this to check co-partitioning and to pick
customer keys that land on a chosen partition.
"""

from __future__ import annotations


def murmur2(data: bytes) -> int:
    """Kafka's Java ``Utils.murmur2`` (unsigned 32-bit result)."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail, extra = length & ~3, length % 4
    if extra >= 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def java_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def key_on_partition(stem: str, partition: int, partitions: int) -> bytes:
    """The first key ``stem``, ``stem-1``, ``stem-2``, ... that lands on ``partition``."""
    n = 0
    while True:
        key = (stem if n == 0 else f"{stem}-{n}").encode()
        if java_partition(key, partitions) == partition:
            return key
        n += 1
