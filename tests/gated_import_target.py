"""A target whose import waits for the file ``ACTORBUS_TEST_GATE`` (a slow start-up).

It appends "importing" to ``ACTORBUS_TEST_MARKS`` first, so a test knows it is there.
"""

import os
import time
from pathlib import Path

from actorbus import ActorSystem

with Path(os.environ["ACTORBUS_TEST_MARKS"]).open("a") as marks:
    marks.write("importing\n")
while not Path(os.environ["ACTORBUS_TEST_GATE"]).exists():
    time.sleep(0.02)

system = ActorSystem("gated-import")
