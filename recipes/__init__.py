"""Model recipes of our own: trained like the replications (same contract, runner and records), but not
replications of any paper."""
