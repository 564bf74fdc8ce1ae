"""The command line and the settings: what an operator types and the one clear line each mistake gets."""
