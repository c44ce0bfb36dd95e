"""One module per CLI command; each parses options and calls one core function."""
