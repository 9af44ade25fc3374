"""Report writers. They read the verdict model (ClaimResult dicts and run info) and nothing else."""
