"""`python -m hubext.idle` runs the idle-removal service."""

from . import main

main()
