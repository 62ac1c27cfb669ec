"""Explicit checkpoint reporting to Gantry, for training code that wants it.

Dependency-free (Python 3.8+ standard library only). Gantry finds checkpoints on its own: the
agent on node rank 0's host watches the job's checkpoint directory (JobSpec.checkpoint.dir,
GANTRY_CHECKPOINT_DIR) and checks each checkpoint it finds (PyTorch DCP, Megatron-LM,
DeepSpeed, Hugging Face Trainer, TorchTitan, GANTRY_COMPLETE). This module lets the training
code say it explicitly and learn the verdict at once:

    import gantry_ckpt

    path = gantry_ckpt.checkpoint_path("step-%d" % step)     # inside GANTRY_CHECKPOINT_DIR
    gantry_ckpt.begin(path, step)                           # recorded IN_PROGRESS
    save(model, path)                                       # your framework's save
    result = gantry_ckpt.commit(path, step, marker=True)    # checked now; COMMITTED when complete
    if not result.ok:
        print("not complete:", result.reasons)

`commit` runs the same layout check as discovery on the agent: a checkpoint is COMMITTED
(offered to the next attempt as GANTRY_RESUME_FROM) only when it is complete. `marker=True`
first writes an empty GANTRY_COMPLETE file into the directory, for layouts Gantry does not
know (any directory holding that file is complete).

The agent listens on loopback only (GANTRY_CKPT_URL) and answers only the job's own token
(GANTRY_CKPT_TOKEN); both are in every rank's environment when the job has a checkpoint
directory. Outside Gantry (no such variables) every call is a no-op that returns a result
with ok=False and reason "not running under Gantry", so the same script runs anywhere.

"May I write now?" is storage admission: before a save, take a write lease on the storage
target that holds the checkpoint directory, and give it back when the save is done; a rank
resuming from GANTRY_RESUME_FROM takes a read lease the same way:

    with gantry_ckpt.admitted("write"):      # waits for its turn in the target's FIFO queue
        save(model, path)                    # renewed in the background while it runs
    with gantry_ckpt.admitted("read"):
        load(gantry_ckpt.resume_from())

`acquire` / `Lease.release` are the same without the `with`. The agent forwards these calls to
the checkpoint service's StorageService; an agent without its address answers 501, raised as
GantryError. Outside Gantry they are no-ops (`admitted` yields None).
"""

import contextlib
import datetime
import json
import os
import threading
import time
import urllib.error
import urllib.request

__all__ = ["Result", "GantryError", "Lease", "enabled", "checkpoint_dir", "checkpoint_path", "resume_from", "begin", "commit", "acquire", "admitted"]

MARKER = "GANTRY_COMPLETE"
# The agent is on loopback: never through an HTTP proxy from the job's environment (http_proxy),
# which would both fail the call and hand the job's bearer token to the proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_TIMEOUT = float(os.environ.get("GANTRY_CKPT_TIMEOUT", "60"))


class GantryError(Exception):
    """The agent refused the call (bad token, path outside the checkpoint directory ...)."""

    def __init__(self, status, message):
        super().__init__("%s: %s" % (status, message))
        self.status = status
        self.message = message


class Result(object):
    """What the agent said: `status` is COMPLETE, INCOMPLETE, CORRUPT or IN_PROGRESS."""

    def __init__(self, status, reasons=None, files=0, total_bytes=0, step=None, path=""):
        self.status = status
        self.reasons = list(reasons or [])
        self.files = files
        self.total_bytes = total_bytes
        self.step = step
        self.path = path

    @property
    def ok(self):
        return self.status in ("COMPLETE", "IN_PROGRESS")

    def __repr__(self):
        return "Result(status=%r, step=%r, files=%r, total_bytes=%r, reasons=%r)" % (self.status, self.step, self.files, self.total_bytes, self.reasons)


def enabled():
    """True when running under Gantry with a checkpoint directory (the endpoint is reachable)."""
    return bool(os.environ.get("GANTRY_CKPT_URL") and os.environ.get("GANTRY_CKPT_TOKEN"))


def checkpoint_dir():
    """The job's checkpoint directory (GANTRY_CHECKPOINT_DIR), or None."""
    return os.environ.get("GANTRY_CHECKPOINT_DIR") or None


def checkpoint_path(name):
    """`name` inside the job's checkpoint directory."""
    d = checkpoint_dir()
    if not d:
        raise GantryError(0, "GANTRY_CHECKPOINT_DIR is not set (the job has no checkpoint directory)")
    return os.path.join(d, name)


def resume_from():
    """The newest COMMITTED checkpoint this attempt should resume from (GANTRY_RESUME_FROM), or None."""
    return os.environ.get("GANTRY_RESUME_FROM") or None


def _post(route, body):
    """POST to the agent; retried while the agent is unreachable (it may be restarting: its
    ranks keep running and it comes back on the same port) or answers 503, for up to
    GANTRY_CKPT_TIMEOUT seconds (default 60)."""
    url = os.environ["GANTRY_CKPT_URL"].rstrip("/") + route
    data = json.dumps(body).encode("utf-8")
    deadline = time.monotonic() + _TIMEOUT
    delay = 0.25
    while True:
        req = urllib.request.Request(url, data=data, method="POST", headers={
            "Content-Type": "application/json",
            "Authorization": "Bearer " + os.environ["GANTRY_CKPT_TOKEN"],
        })
        try:
            with _OPENER.open(req, timeout=max(1.0, deadline - time.monotonic())) as res:
                return res.status, json.loads(res.read().decode("utf-8") or "{}")
        except urllib.error.HTTPError as e:
            try:
                payload = json.loads(e.read().decode("utf-8") or "{}")
            except ValueError:
                payload = {}
            if e.code == 409:
                return e.code, payload
            if e.code != 503 or time.monotonic() + delay > deadline:
                raise GantryError(e.code, payload.get("error", e.reason))
        except (urllib.error.URLError, ConnectionError, OSError) as e:
            if time.monotonic() + delay > deadline:
                raise GantryError(0, "agent unreachable at %s: %s" % (url, getattr(e, "reason", e)))
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def _result(payload):
    return Result(payload.get("status", ""), payload.get("reasons"), payload.get("files", 0), payload.get("total_bytes", 0), payload.get("step"), payload.get("path", ""))


def _body(path, step):
    body = {"path": os.path.abspath(path)}
    if step is not None:
        body["step"] = int(step)
    return body


def begin(path, step=None):
    """Records that a checkpoint is being written at `path` (IN_PROGRESS until committed)."""
    if not enabled():
        return Result("", ["not running under Gantry"])
    _, payload = _post("/v1/checkpoints/begin", _body(path, step))
    return _result(payload)


def commit(path, step=None, marker=False, checksums=False):
    """Asks the agent to check `path` now; COMMITTED when complete, else the reasons.

    marker: write GANTRY_COMPLETE into `path` first (for layouts Gantry does not recognise).
    checksums: record a sha256 of every file in the manifest (reads every byte; slow on big checkpoints).
    """
    if not enabled():
        return Result("", ["not running under Gantry"])
    if marker:
        with open(os.path.join(path, MARKER), "w"):
            pass
    body = _body(path, step)
    body["checksums"] = bool(checksums)
    _, payload = _post("/v1/checkpoints/commit", body)
    return _result(payload)


class Lease(object):
    """A storage lease held by this rank: renewed in the background until `release`.

    `lost` is set when a renewal finds the lease gone (expired or released by the control
    plane, e.g. the attempt was declared dead): stop writing then.
    """

    def __init__(self, payload, ttl_ms=0):
        self.id = payload["lease_id"]
        self.target = payload.get("target", "")
        self.mode = payload.get("mode", "")
        self.expires_at = payload.get("expires_at")
        self.lost = threading.Event()
        self._ttl_ms = ttl_ms
        self._stop = threading.Event()
        # Renew every third of the TTL on this host's monotonic clock: the TTL asked for when
        # known, else the time left by the service's expires_at, capped at 2 s, since that stamp
        # comes from another host's clock and a skew must not let the lease lapse.
        if ttl_ms > 0:
            self._interval = max(0.2, ttl_ms / 3000.0)
        else:
            self._interval = min(2.0, max(0.2, _seconds_until(self.expires_at) / 3.0))
        self._thread = threading.Thread(target=self._renew_loop, name="gantry-lease-renew", daemon=True)
        self._thread.start()

    def renew(self):
        """Extends the lease now; GantryError(404) once it is gone."""
        _, payload = _post("/v1/storage/renew", {"lease_id": self.id, "target": self.target, "ttl_ms": self._ttl_ms})
        self.expires_at = payload.get("expires_at", self.expires_at)

    def _renew_loop(self):
        while not self._stop.wait(self._interval):
            try:
                self.renew()
            except GantryError as e:
                if e.status == 404:
                    self.lost.set()
                    return

    def release(self):
        """Gives the lease back ("I am done"); the next rank in the queue gets it at once."""
        if self._stop.is_set():
            return 0
        self._stop.set()
        _, payload = _post("/v1/storage/release", {"lease_id": self.id, "target": self.target})
        return payload.get("released", 0)

    def __repr__(self):
        return "Lease(id=%r, target=%r, expires_at=%r)" % (self.id, self.target, self.expires_at)


def _seconds_until(stamp):
    if not stamp:
        return 0.0
    try:
        at = datetime.datetime.strptime(stamp.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return 0.0
    return max(0.0, (at - datetime.datetime.now(datetime.timezone.utc)).total_seconds())


def acquire(mode="write", timeout=None, rank=None, ttl_ms=0, on_wait=None):
    """Waits for a storage lease ("may I write now?") and returns it as a Lease.

    mode: "write" before a save, "read" before loading a checkpoint at restart.
    timeout: seconds to wait for the turn (None: as long as it takes); GantryError(408) after.
    rank: this process's global rank (default: RANK from the environment, else 0).
    ttl_ms: lease TTL (0: the target's default); renewed every third of it.
    on_wait: called with the place in the queue (0 is next) while waiting.
    Outside Gantry: returns None at once.
    """
    if not enabled():
        return None
    if mode not in ("write", "read"):
        raise ValueError('mode must be "write" or "read"')
    if rank is None:
        rank = int(os.environ.get("RANK", "0") or 0)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait_ms = 10000 if deadline is None else int(max(0.0, min(10.0, deadline - time.monotonic())) * 1000)
        _, payload = _post("/v1/storage/acquire", {"mode": mode, "rank": int(rank), "wait_ms": wait_ms, "ttl_ms": int(ttl_ms)})
        if payload.get("granted"):
            return Lease(payload, ttl_ms)
        if on_wait is not None:
            on_wait(payload.get("position", 0))
        if deadline is not None and time.monotonic() >= deadline:
            raise GantryError(408, "no %s lease within %ss (place %s in the queue)" % (mode, timeout, payload.get("position")))


@contextlib.contextmanager
def admitted(mode="write", timeout=None, rank=None, ttl_ms=0, on_wait=None):
    """`with admitted("write"): save(...)`: holds a storage lease for the block (see acquire)."""
    lease = acquire(mode, timeout=timeout, rank=rank, ttl_ms=ttl_ms, on_wait=on_wait)
    try:
        yield lease
    finally:
        if lease is not None:
            lease.release()
