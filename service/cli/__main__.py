"""`python -m service.cli`: the `quanzu` command."""
from service.cli import app

app()
