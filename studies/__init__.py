"""Studies beside the replications: measurements that inform a replication's assumptions or a recipe's design
(what a paper's full run costs on this CPU, what a recipe change buys), written to results/bench/. They run
the numbers layer's code and write measurement files, so they sit in the runs layer, outside every record's
code hash."""
