"""Ingestion: gateways' offer decisions in, final checks, budget, push, the funnel's rows."""
