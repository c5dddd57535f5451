"""Worker processes, parent side, and the records they exchange."""
