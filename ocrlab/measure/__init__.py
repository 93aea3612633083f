"""Measurement: host and cgroup figures (:mod:`.host`), the /proc walk of the process tree
(:mod:`.proctree`) and the background sampler that turns walks into peaks and trace
counters (:mod:`.monitor`)."""
