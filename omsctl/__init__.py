"""omsctl: the operator and developer CLI (`omsctl up`, `down`, `status`).

omsctl, the tests and the benchmarks start servers (Postgres, NATS, services) with fork and exec while
gRPC may be busy in the same process. gRPC's fork handlers are for a child that goes on using gRPC;
ours exec at once, and with the handlers on, a fork during a call skips them half-way ("Other threads
are currently calling into gRPC, skipping fork() handlers"): the child can die before it execs and the
parent's gRPC can hang at exit. gRPC reads the switch when it is first imported, so it is set here,
before anything of ours imports grpc (gRPC's own advice for fork-then-exec: doc/fork_support.md)."""

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
