"""A send caps glibc's malloc arenas before it starts a thread (its peak memory then stays
flat with the length of the list: bench/bench_delivery.py)."""

import subprocess
import sys

PROBE = """
import threading
from newsletter.delivery.arenas import limit_arenas
assert limit_arenas(), "mallopt refused M_ARENA_MAX"
threads = [threading.Thread(target=lambda: bytearray(1 << 20)) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print("ok")
"""


def test_the_arena_cap_takes_on_this_c_library():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
