"""The tables shipped with tierfleet (tiers, prices), found through ``importlib.resources``
wherever the package is installed."""

from importlib.resources import files
from pathlib import Path

TABLES = Path(str(files(__name__)))
DEFAULT_TIER_TABLE = TABLES / "default.toml"  # TIERFLEET_TIER_TABLE unset
PRICE_TABLE = TABLES / "prices.toml"  # TIERFLEET_PRICE_TABLE is laid over it
