"""`python -m workers` = `quanzu worker`."""
from workers.run import run_worker

run_worker()
