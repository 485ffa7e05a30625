"""Nahfeld store gateway: BLE scanning, EID recognition, presence, offers.

``gateway.ble``, ``gateway.presence`` and ``gateway.core`` are the pure core;
everything doing I/O lives beside them and imports them, never the reverse.
"""
