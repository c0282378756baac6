"""torchrun, with one change: while its workers write their checkpoint after a signal,
a repeated SIGTERM does not cut the agent's wait short.

torchrun forwards the first SIGTERM/SIGINT to the workers and waits up to
`--shutdown_timeout` seconds before it kills them. A second signal raises in the middle
of that wait and the agent exits, and the workers die with it (PR_SET_PDEATHSIG) before
the checkpoint is complete. Slurm signals every process of a step, and a launcher may
forward the same signal again, so the agent ignores SIGTERM/SIGHUP after the first;
a second SIGINT (Ctrl-C twice) still aborts at once.

    python -m shikomi.train.agent [torchrun arguments]
"""

from __future__ import annotations

import signal
import sys


def main() -> int:
    import torch.distributed.elastic.multiprocessing.api as mp_api
    from torch.distributed.run import main as torchrun_main

    original = mp_api._terminate_process_handler
    seen: list[int] = []

    def once(signum, frame):
        if seen and signum != signal.SIGINT:
            return  # the workers already have it; keep waiting for their checkpoint
        seen.append(signum)
        original(signum, frame)

    mp_api._terminate_process_handler = once
    try:
        torchrun_main()
    except mp_api.SignalException as e:  # the workers were signalled and have exited: no traceback
        return 128 + int(e.sigval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
