"""HPC Pack's "Cloning a Job" example (seed 002, C#), written in Python against Shoal's SDK.

Creates a job with a parametric task (`echo *`, values 1 to 5) and a plain task, submits it,
clones it, changes the clone's parametric task (start at 3, stdout to a file per instance),
adds a task to the clone and submits the clone, printing each job's task list on the way.

    python examples/clone_job.py [--head HOST:PORT] [--out DIR]

The original's `<COMPUTERNAMEGOESHERE>` ping becomes `hostname`, and `<PATHGOESHERE>` the
--out directory (default: a new temporary one), which must be visible to the nodes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from shoal.scheduler import RequestFailed, Scheduler, SchedulerJob


def create_job(scheduler: Scheduler) -> int:
    """Creates a job, adds a task and a parametric task to it, and submits it."""
    job = scheduler.create_job()

    task = job.create_task()
    task.command_line = "echo *"
    task.is_parametric = True
    task.start_value = 1
    task.end_value = 5
    task.increment_value = 1
    job.add_task(task)

    task = job.create_task()
    task.command_line = "hostname"
    job.add_task(task)

    scheduler.submit_job(job)
    return job.id


def print_tasks(job: SchedulerJob) -> None:
    """The job's tasks, parametric ones expanded to their instances, with stdout paths."""
    print(f"Tasks for job {job.id}")
    for task in job.get_task_list(expand=True):
        task_id = task.task_id
        print(f"id({task_id.task}), instance({task_id.instance}), job({task_id.job})")
        print(f"\tcommand: {task.command_line}")
        print(f"\tstdout: {task.stdout_path}")
    print()


def update_cloned_job(scheduler: Scheduler, job: SchedulerJob, out: str) -> None:
    """Starts the clone's parametric task at 3 with stdout to a file per instance, and adds a task."""
    task = job.open_task(scheduler.create_task_id(1))
    task.start_value = 3
    task.stdout_path = f"{out}/echo_inst*.txt"
    task.commit()

    task = job.create_task()
    task.command_line = "echo 'new task'"
    task.stdout_path = f"{out}/new.txt"
    job.add_task(task)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head", default="", help="head node HOST:PORT (default: $SHOAL_HEAD, else localhost:7676)")
    parser.add_argument("--out", default="", help="directory for the clone's stdout files")
    args = parser.parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="shoal-clone-")
    try:
        with Scheduler.connect(args.head) as scheduler:
            job_id = create_job(scheduler)
            print_tasks(scheduler.open_job(job_id))

            cloned = scheduler.clone_job(job_id)
            print_tasks(scheduler.open_job(cloned.id))

            update_cloned_job(scheduler, cloned, out)
            print_tasks(scheduler.open_job(cloned.id))

            scheduler.submit_job(cloned)
    except RequestFailed as e:
        print(e.message, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
