"""API worker processes end when their supervisor dies.

With ``TRACELEDGER_API_WORKERS`` > 1, uvicorn's supervisor process spawns the
workers. If the supervisor is SIGKILLed (a crash, the OOM killer, a test), it
cannot stop them: they would keep serving old code and holding the port, so a
restarted API could not bind. Linux's ``PR_SET_PDEATHSIG`` has the kernel send
the worker a signal when its parent dies; SIGTERM makes uvicorn shut the worker
down as on a normal stop (the scan recorder's work is tracked, so nothing is
lost or doubled by ending mid-batch).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys

from ledger.logging_setup import get_logger

log = get_logger("api")

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def end_with_supervisor(sig: signal.Signals = signal.SIGTERM) -> bool:
    """In a worker spawned by a supervisor process, ask for ``sig`` when it dies.

    Returns True when armed; False in a process nobody supervises (one worker:
    the API is itself the server process and must outlive the shell that
    started it) or where the kernel does not offer it.
    """
    parent = multiprocessing.parent_process()
    if parent is None or not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        log.warning("supervisor_death_signal_unavailable", errno=ctypes.get_errno())
        return False
    if os.getppid() != parent.pid:  # the supervisor died before the signal was armed
        log.warning("supervisor_gone", supervisor_pid=parent.pid)
        os.kill(os.getpid(), sig)
    return True
