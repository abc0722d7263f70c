"""Thread and process counts come from ``Settings`` like every other setting (issue 13).

``TRACELEDGER_VERIFY_THREADS`` (ledger.sigcheck) and ``TRACELEDGER_AUDIT_PROCESSES``
(consumers.auditor): unset means the reader's default (one per core), 0 means none.
"""

from __future__ import annotations

import os

import pytest

from consumers.auditor import default_processes
from ledger.config import Settings
from ledger.sigcheck import default_threads


def test_unset_counts_default_to_one_per_core():
    s = Settings.from_env({})
    assert (s.verify_threads, s.audit_processes) == (None, None)
    assert default_threads(s) == (os.cpu_count() or 1)
    cores = os.cpu_count() or 1
    assert default_processes(s) == (cores if cores > 1 else 0)
    assert Settings.from_env(s.to_env()) == s


@pytest.mark.parametrize("raw, count", [("0", 0), ("3", 3), ("", None)])
def test_counts_are_read_and_written_back(raw, count):
    s = Settings.from_env({"TRACELEDGER_VERIFY_THREADS": raw, "TRACELEDGER_AUDIT_PROCESSES": raw})
    assert (s.verify_threads, s.audit_processes) == (count, count)
    assert Settings.from_env(s.to_env()) == s
    if count is not None:
        assert (default_threads(s), default_processes(s)) == (count, count)


def test_a_count_that_is_not_a_whole_number_is_refused():
    with pytest.raises(SystemExit, match="TRACELEDGER_VERIFY_THREADS"):
        Settings.from_env({"TRACELEDGER_VERIFY_THREADS": "-1"})
