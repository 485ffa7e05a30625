"""Prometheus metrics for the gateway, read from the live counters at scrape time.

A custom collector rather than counters bumped on the hot path: the core
keeps plain integers, and a scrape turns them into metrics. Nothing here
costs anything per advert.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from .core import CoreStats
from .mqtt_link import LinkStats
from .outbox import OutboxStats
from .scanner import ScannerStats

#: core, scanner, link and outbox counters; outbox depth, signals tracked, rulesets refused
MetricSources = tuple[CoreStats, ScannerStats | None, LinkStats, OutboxStats, int, int, int]


class GatewayCollector(Collector):
    """Reads the gateway's counters at each scrape."""

    def __init__(self, sources: Callable[[], MetricSources]) -> None:
        self._sources = sources

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        core, scanner, link, outbox, depth, tracked, rejected_rulesets = self._sources()
        yield CounterMetricFamily("nahfeld_adverts", "Adverts handed to the core", core.adverts)
        malformed = CounterMetricFamily(
            "nahfeld_adverts_malformed", "Adverts with malformed data, by reason", labels=["reason"]
        )
        for reason, count in sorted(core.malformed.items()):
            malformed.add_metric([reason], count)
        yield malformed
        dropped = CounterMetricFamily(
            "nahfeld_adverts_dropped", "Adverts dropped in memory, by why", labels=["why"]
        )
        dropped.add_metric(["not_beacon"], core.not_beacon)
        dropped.add_metric(["unrecognised"], core.unrecognised)
        yield dropped
        sightings = CounterMetricFamily(
            "nahfeld_sightings", "Recognised adverts, by kind", labels=["kind"]
        )
        sightings.add_metric(["app"], core.app_sightings)
        sightings.add_metric(["beacon"], core.beacon_sightings)
        yield sightings
        events = CounterMetricFamily(
            "nahfeld_presence_events", "Presence events, by type", labels=["type"]
        )
        for kind, count in sorted(core.events.items()):
            events.add_metric([kind], count)
        yield events
        yield GaugeMetricFamily("nahfeld_devices_tracked", "Signals held by the tracker", tracked)
        yield GaugeMetricFamily("nahfeld_outbox_depth", "Messages waiting in the outbox", depth)
        yield CounterMetricFamily("nahfeld_events_queued", "Messages queued", outbox.queued)
        yield CounterMetricFamily("nahfeld_events_sent", "Messages acknowledged", link.acked)
        outbox_dropped = CounterMetricFamily(
            "nahfeld_outbox_dropped", "Messages dropped by the outbox", labels=["why"]
        )
        outbox_dropped.add_metric(["overflow"], outbox.dropped_overflow)
        outbox_dropped.add_metric(["expired"], outbox.dropped_expired)
        yield outbox_dropped
        yield CounterMetricFamily("nahfeld_mqtt_connects", "MQTT connections made", link.connects)
        rejected = CounterMetricFamily(
            "nahfeld_mqtt_rejected", "Incoming MQTT messages refused, by reason", labels=["reason"]
        )
        for reason, count in sorted(link.rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected
        yield CounterMetricFamily(
            "nahfeld_rulesets_rejected", "Rulesets refused as invalid", rejected_rulesets
        )
        if scanner is not None:
            yield CounterMetricFamily(
                "nahfeld_scanner_restarts", "Scanning restarted after trouble", scanner.restarts
            )
            yield CounterMetricFamily(
                "nahfeld_scanner_failures", "Failed scanner start attempts", scanner.failures
            )
            yield GaugeMetricFamily(
                "nahfeld_scanning", "1 while the radio is scanning", int(scanner.scanning)
            )


def serve_metrics(collector: Collector, port: int) -> CollectorRegistry:
    """Expose ``collector`` on http://0.0.0.0:port/metrics (port 0: not at all)."""
    registry = CollectorRegistry()
    registry.register(collector)
    if port:
        start_http_server(port, registry=registry)
    return registry
