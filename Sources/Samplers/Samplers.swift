// Samplers: token samplers, CFG schedules, sampling loops.
