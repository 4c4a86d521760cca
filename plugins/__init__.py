"""Backend plugins shipped with vidbridge (each registers through the ``vidbridge`` entry-point group)."""
