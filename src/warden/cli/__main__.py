"""`python -m warden.cli`: the same as the `warden` command."""

from warden.cli import main

main()
