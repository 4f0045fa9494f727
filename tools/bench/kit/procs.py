"""The processes a bench run starts: each one remembered, so that every exit (the end, an
error, Ctrl-C, SIGTERM, the whole-run deadline) stops them, by pid, load generator first."""

import signal
import subprocess


class Interrupted(Exception):
    pass


def on_signal(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def stop(p, grace=5.0):
    """SIGTERM, then SIGKILL after `grace` seconds; only this process, by its pid."""
    if p.poll() is None:
        try:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)
        except ProcessLookupError:
            pass


class Children:
    """Every Popen this run started and has not stopped yet."""

    def __init__(self):
        self.live = []

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True, **kw)
        self.live.append(p)
        return p

    def forget(self, p):
        """`p` ended on its own (or was waited for): no longer ours to stop."""
        if p in self.live:
            self.live.remove(p)

    def stop(self, p, grace=5.0):
        stop(p, grace)
        self.forget(p)

    def interrupt(self, p, timeout):
        """SIGINT (perf and strace then write their counts), wait, else stop."""
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(p)
        self.forget(p)

    def cleanup(self):
        for p in reversed(self.live[:]):  # the load generator before the server it talks to
            try:
                self.stop(p, grace=2.0)
            except Exception:  # cleanup must go on to the next child
                pass
