"""Developer tools that run from a source checkout (local cluster, process supervision); not shipped in the wheel."""
