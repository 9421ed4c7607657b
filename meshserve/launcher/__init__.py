"""`meshserve up`: the whole mesh on one machine as supervised native processes."""
