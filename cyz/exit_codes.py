"""The exit codes of every `cyz` command, in one place (README: "Exit codes").

Cron, systemd and `cyz health` probes tell a failed night from a good one by these.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # the run did its work; some sources may have failed (counted in the summary)
    ERROR = 1  # an operation failed (engine refused, a fetch of one URL failed, ...)
    CONFIG = 2  # bad configuration, usage or CYZ_* setting: nothing was attempted
    NOTHING_FETCHED = 3  # a crawl in which every request failed (network, DNS, proxy down)
    NOT_STORED = 4  # records could not be stored or spooled (disk full, unwritable data dir)
    LOCKED = 5  # another crawl, re-extraction, migration or prune holds the data dir
    INTERRUPTED = 130  # stopped by Ctrl-C / SIGINT (after flushing what was fetched)
