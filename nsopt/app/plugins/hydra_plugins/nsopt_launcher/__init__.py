"""nsopt's Hydra launchers (Hydra loads launcher plugins only from the ``hydra_plugins`` package)."""
