"""The volume: its one layout, locks, atomic files, errors and exit codes, progress lines."""
