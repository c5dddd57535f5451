"""The measure stage: the sweep, comparison groups in lockstep, workers, executors."""
