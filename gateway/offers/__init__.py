"""Offer rules and the pure engine that matches presence events to them."""
