"""`vita-eval bench`: synthetic full-scale workloads in the official layouts, fast vs reference engine."""
