"""The build stage: exports, the verified cache, users' model files."""
