"""R models through rpy2: an .rds and a predict function, on one R thread per process plus forked workers."""
