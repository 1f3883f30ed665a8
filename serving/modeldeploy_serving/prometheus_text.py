"""Samples out of Prometheus text, on prometheus_client's own parser: the one reader of the
metrics the replicas, the head and the gateway publish (the replica's engine gauges, the
policy's queue-depth gauge, the gateway's request counters)."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def matching(text: str, names: Collection[str], **labels: str) -> Iterator[Sample]:
    """The finite samples of `text` named one of `names` whose labels include `labels`.

    Text that does not parse yields nothing past the bad line: the callers treat a figure they
    cannot read as absent, never as a crash of the loop that asked."""
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name not in names or not math.isfinite(sample.value):
                    continue
                if all(sample.labels.get(k) == v for k, v in labels.items()):
                    yield sample
    except ValueError:
        return
