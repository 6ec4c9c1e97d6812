"""`python -m multiflexi_web.cli` runs the `multiflexi` command."""

from multiflexi_web.cli import main

main()
