"""Nahfeld cloud rules service (FastAPI). Not built yet: see the open issues."""
