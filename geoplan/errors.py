"""The small family of errors geoplan raises.

Every message says what was wrong and how to fix it. Only ``api/`` maps these
to HTTP status codes; the CLI prints them without a traceback.
"""

from __future__ import annotations


class GeoplanError(Exception):
    """Base class of every error geoplan raises on purpose."""


class InputError(GeoplanError, ValueError):
    """A file, parameter or value given by the user cannot be used as it is."""


class ConfigError(InputError):
    """A region config file has a wrong key, a missing key or a bad value."""


class CRSMismatchError(InputError):
    """A layer's coordinate reference system is missing or does not fit the data."""


class EmptyDataError(InputError):
    """A file or layer holds nothing geoplan can use."""


class InfeasibleError(GeoplanError):
    """An optimisation target cannot be reached with the sites available."""
