"""An example third-party vidbridge backend plugin (in-process fake, entry point ``example``)."""

__version__ = "0.1.0"
