"""The parts of the mixed load test (issue 25); the script is benchmarks/load.py.

run_all.py runs every benchmarks/*.py, so the entry point is the file benchmarks/load.py and
this package holds what it is made of. As an import name `benchmarks.load` is this package
(a package wins over a module of the same name): import its modules, never the script.

  client.py    a keep-alive HTTP/1.1 client on asyncio (Content-Length and chunked bodies)
  stats.py     counts, statuses, latencies and error samples per operation
  world.py     the firms, their API clients, books, bank account, record class, webhook
               endpoint; the staff; the catalog service; the sanctions list; the drain check
  mix.py       the weighted operations and the connections that run them
  topology.py  one replica, or two behind nginx / on one SO_REUSEPORT port; the worker,
               the webhook receiver; whose CPU is whose
  report.py    the tables
"""
