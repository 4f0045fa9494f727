"""The bench's modes, one file each, listed in ../run. Each has USAGE (its line of the help),
`settings(env)` (what it reads from the environment) and `run(bench, settings, which)`."""
