"""The EID resolver: from the EIDs a gateway heard to per-store pseudonymous tokens."""

from .index import EidIndex
from .table import EidResolverTable, Resolution
from .tokens import install_of_token, store_token

__all__ = ["EidIndex", "EidResolverTable", "Resolution", "install_of_token", "store_token"]
