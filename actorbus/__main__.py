"""``python -m actorbus``: the same as the ``actorbus`` command."""

from .cli import main

main(prog_name="actorbus")
