"""Pydantic schemas, one module per resource, split by direction (``...Create``/``...Update`` in, ``...Out`` out)."""
