"""Subcommands of the `trailwarden` command line, one module each."""
