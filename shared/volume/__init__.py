"""The volume: its one layout, locks, atomic files and typed loaders."""
