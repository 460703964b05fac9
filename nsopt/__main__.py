"""``python -m nsopt [overrides]``: the main job (see ``nsopt.app.cli``)."""

from nsopt.app.cli import main

if __name__ == "__main__":
    main()
