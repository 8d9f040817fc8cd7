# SPDX-License-Identifier: MIT
# A Python workload for melloc under LD_PRELOAD with PYTHONMALLOC=malloc: every object
# allocation goes through malloc/realloc/free.  Prints a digest that must not depend on
# the allocator.
import hashlib
import json
import random
import sqlite3
import threading

rng = random.Random(42)
d = {}
for i in range(200000):
    d[f"key{i}"] = [i, str(i) * (i % 7), {"x": i % 13}]
for i in range(0, 200000, 3):
    del d[f"key{i}"]
blob = json.dumps(d, sort_keys=True)
h = hashlib.sha256(blob.encode())

words = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(1, 12))) for _ in range(50000)]
words.sort()
h.update("".join(words).encode())

db = sqlite3.connect(":memory:")
db.execute("create table t(a integer, b text)")
db.executemany("insert into t values(?, ?)", [(i, "v" * (i % 100)) for i in range(20000)])
(total,) = db.execute("select sum(length(b)) + sum(a) from t where a % 3 = 1").fetchone()
h.update(str(total).encode())

results = [None] * 4


def work(k):
    r = random.Random(k)
    acc = bytearray()
    for _ in range(20000):
        acc += bytes(r.randint(0, 255) for _ in range(r.randint(0, 8)))
        if len(acc) > 10000:
            acc = acc[5000:]
    results[k] = hashlib.md5(bytes(acc)).hexdigest()


threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
h.update("".join(results).encode())
print(len(d), total, h.hexdigest())
