"""nsopt's Hydra launchers for sweeps on Slurm or local processes (``hydra/launcher=slurm|submitit_local``).

They live in the ``hydra_plugins`` package because Hydra instantiates launchers only from it
(this module imports nothing of nsopt: Hydra imports it at every start).

Thin subclasses of hydra-submitit-launcher's launchers that wait for the jobs
themselves instead of blocking on the first one:

- each job's log file is printed when it is submitted, and one summary line when all finish;
- a job that ends without a result (``scancel``, node failure, time limit) is reported
  ``killed`` with its Slurm state and the sweep goes on: its run folder stays without
  ``summary.json``, so ``nsopt.report`` lists it as killed and relaunching the same
  command reruns it (resume skips the complete ones);
- Slurm: a job pending for a reason no wait can fix (``PartitionConfig``: it asks more
  CPUs or memory than any node has, ``BadConstraints``, ...) is reported with Slurm's
  reason after ``unrunnable_after_s`` and cancelled, instead of pending forever;
  ``max_pending_min`` bounds any pending;
- Slurm without accounting (``AccountingStorageType=accounting_storage/none``, common on
  small clusters): job states come from ``squeue`` instead of ``sacct``, so submitit's
  per-poll sacct warning is gone and a cancelled job is seen as finished.
"""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path
from typing import Any, Sequence

from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher import submitit_launcher as _plugin

__all__ = ["SlurmLauncher", "LocalLauncher", "UNRUNNABLE_REASONS", "squeue", "accounting_enabled"]

log = logging.getLogger("nsopt")

#: Slurm pending reasons that waiting does not fix (the request exceeds the partition or its nodes).
UNRUNNABLE_REASONS = ("PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "BadConstraints",
                      "InvalidAccount", "InvalidQOS", "QOSMaxCpuPerJobLimit", "QOSMaxMemoryPerJob",
                      "QOSMaxWallDurationPerJobLimit", "QOSMaxGRESPerJob", "AssocMaxCpuPerJobLimit",
                      "AssocMaxWallDurationPerJobLimit", "AssocMaxNodePerJobLimit")

_TIMEOUT_S = 60  # bound on every Slurm command


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=_TIMEOUT_S)


def squeue(job_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``{job id: (state, reason)}`` of the jobs Slurm still lists (array elements one by one).

    Raises ``OSError`` when ``squeue`` cannot answer; a job that left the queue is absent.
    """
    mains = sorted({j.split("_")[0] for j in job_ids})
    if not mains:
        return {}
    out = _run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%r", "-j", ",".join(mains)])
    if out.returncode != 0 and "Invalid job id" not in out.stderr:
        raise OSError(f"squeue failed: {out.stderr.strip()}")
    found = {}
    for line in out.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            found[parts[0]] = (parts[1], parts[2])
    return found


def accounting_enabled() -> bool:
    """Whether ``sacct`` can answer on this cluster (``scontrol show config``)."""
    try:
        out = _run(["scontrol", "show", "config"])
    except (OSError, subprocess.TimeoutExpired):
        return True
    for line in out.stdout.splitlines():
        if line.split("=")[0].strip() == "AccountingStorageType":
            return "accounting_storage/none" not in line
    return True


def _squeue_watcher():
    """A submitit watcher whose job states come from ``squeue`` (for clusters without accounting)."""
    from submitit.slurm.slurm import SlurmInfoWatcher

    class SqueueWatcher(SlurmInfoWatcher):
        def update(self) -> None:
            todo = self._registered - self._finished
            if not todo:
                return
            self._num_calls += 1
            try:
                found = squeue(sorted(todo))
            except (OSError, subprocess.TimeoutExpired) as e:
                log.debug("squeue: %s", e)
                return
            for job_id in todo:
                state, reason = found.get(job_id, ("LEFT_QUEUE", ""))
                self._info_dict[job_id] = {"JobID": job_id, "State": state, "Reason": reason}
            self._last_status_check = time.time()
            self._finished |= {j for j in todo if self.is_done(j, mode="cache")}

    return SqueueWatcher(delay_s=10)


class _Waiting:
    """Submission, log paths, bounded waiting and the summary: shared by both launchers."""

    _NSOPT_KEYS: dict[str, Any] = {"poll_s": 2.0}

    def _split_params(self, params: dict[str, Any]) -> dict[str, Any]:
        self.nsopt = {k: params.pop(k, v) for k, v in self._NSOPT_KEYS.items()}
        return params

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        from hydra.core.singleton import Singleton
        from hydra.core.utils import filter_overrides

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, folder=self.params["submitit_folder"],
                                         **{f"{self._EXECUTOR}_max_num_timeout": self.params.get("max_num_timeout", 0)}
                                         if "max_num_timeout" in self.params else {})
        self._configure(executor)
        base = set(_plugin.OmegaConf.structured(_plugin.BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in self.params.items()
                                      if k not in ("submitit_folder", "max_num_timeout")})
        nums = [initial_job_idx + i for i in range(len(job_overrides))]
        labels = {n: " ".join(filter_overrides(o)) or "defaults" for n, o in zip(nums, job_overrides)}
        args = [(list(o), "hydra.sweep.dir", n, f"job_id_for_{n}", Singleton.get_state())
                for n, o in zip(nums, job_overrides)]
        t0 = time.perf_counter()
        jobs = executor.map_array(self, *zip(*args))
        for n, job in zip(nums, jobs):
            print(f"nsopt: job {n} [{labels[n]}] submitted as {self._EXECUTOR} job {job.job_id}; "
                  f"log: {job.paths.stdout}", flush=True)
        self._wait(dict(zip(nums, jobs)), labels)
        returns, states = [], []
        for n, o, job in zip(nums, job_overrides, jobs):
            if job.paths.result_pickle.exists():
                returns.append(job.results()[0])
                states.append("finished" if returns[-1].status == JobStatus.COMPLETED else "error")
            else:
                state = self._state(job)
                print(f"nsopt: job {n} [{labels[n]}] killed ({self._EXECUTOR} job {job.job_id}: {state}), no "
                      f"result; relaunch the same command to rerun it. Log: {job.paths.stdout}", flush=True)
                returns.append(JobReturn(overrides=list(o), status=JobStatus.COMPLETED, _return_value=None))
                states.append("killed")
        counts = ", ".join(f"{states.count(s)} {s}" for s in ("finished", "killed", "error") if states.count(s))
        print(f"nsopt: all {len(jobs)} jobs ended after {time.perf_counter() - t0:.1f} s: {counts}; "
              f"logs in {Path(jobs[0].paths.folder).parent}", flush=True)
        return returns

    def _configure(self, executor) -> None:
        pass

    def _state(self, job) -> str:
        try:
            return str(job.state)
        except Exception:  # noqa: BLE001 - only for the message
            return "UNKNOWN"

    def _wait(self, jobs: dict, labels: dict) -> None:
        while not all(job.done() for job in jobs.values()):
            self._check_pending(jobs, labels)
            time.sleep(float(self.nsopt["poll_s"]))

    def _check_pending(self, jobs: dict, labels: dict) -> None:
        pass


class LocalLauncher(_Waiting, _plugin.LocalLauncher):
    """``hydra/launcher=submitit_local``: one local process per job, logs printed, one summary line."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.params = self._split_params(self.params)


class SlurmLauncher(_Waiting, _plugin.SlurmLauncher):
    """``hydra/launcher=slurm``: one Slurm array element per job (see the module docstring)."""

    _NSOPT_KEYS = {"poll_s": 5.0, "unrunnable_after_s": 30.0, "max_pending_min": None,
                   "unrunnable_reasons": list(UNRUNNABLE_REASONS)}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.params = self._split_params(self.params)
        self._pending_since: dict[str, tuple[str, float]] = {}
        self._last_check = 0.0

    def _configure(self, executor) -> None:
        if not accounting_enabled():
            from submitit.slurm.slurm import SlurmJob

            log.info("Slurm accounting is off: job states from squeue")
            SlurmJob.watcher = _squeue_watcher()  # submitit builds array jobs as SlurmJob, not job_class

    def _check_pending(self, jobs: dict, labels: dict) -> None:
        now = time.monotonic()
        if now - self._last_check < float(self.nsopt["poll_s"]):
            return
        self._last_check = now
        by_id = {job.job_id: (n, job) for n, job in jobs.items()}
        try:
            found = squeue(list(by_id))
        except (OSError, subprocess.TimeoutExpired) as e:
            log.debug("squeue: %s", e)
            return
        never = set(self.nsopt["unrunnable_reasons"] or ())
        max_pending = self.nsopt["max_pending_min"]
        for job_id, (state, reason) in found.items():
            if job_id not in by_id or state != "PENDING":
                self._pending_since.pop(job_id, None)
                continue
            first_reason, since = self._pending_since.setdefault(job_id, (reason, now))
            waited = now - since
            unrunnable = reason in never and waited >= float(self.nsopt["unrunnable_after_s"])
            too_long = max_pending is not None and waited >= 60 * float(max_pending)
            if unrunnable or too_long:
                n, job = by_id[job_id]
                why = ("no node of the partition can run it" if unrunnable
                       else f"pending longer than max_pending_min={max_pending}")
                print(f"nsopt: job {n} [{labels[n]}] cannot start: Slurm job {job_id} pending with reason "
                      f"{reason} ({why}); it asks {self._request()}; the nodes have {_nodes()}. Cancelled: "
                      "lower hydra.launcher.cpus_per_task / mem_gb / timeout_min / gpus_per_node or choose "
                      "another hydra.launcher.partition (`scontrol show partition` shows the limits).", flush=True)
                job.cancel(check=False)
                self._pending_since.pop(job_id, None)

    def _request(self) -> str:
        keys = ("partition", "cpus_per_task", "mem_gb", "gpus_per_node", "timeout_min", "constraint", "account", "qos")
        return ", ".join(f"{k}={self.params.get(k)}" for k in keys if self.params.get(k) is not None)


def _nodes() -> str:
    """The partitions' nodes in a few words (``sinfo``), for messages."""
    try:
        out = _run(["sinfo", "-h", "-o", "%P %D nodes x %c CPUs, %m MB, gres %G, time limit %l"])
    except (OSError, subprocess.TimeoutExpired):
        return "(sinfo did not answer)"
    return "; ".join(out.stdout.strip().splitlines()) or "(sinfo gave nothing)"
