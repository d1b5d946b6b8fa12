"""baseforge.run: the helpers every job and the Snakefile use."""

import subprocess
import sys
import threading

from baseforge.run import cancel_idle_timers


def test_cancel_idle_timers_stops_a_waiting_timer():
    fired = threading.Event()
    timer = threading.Timer(600, fired.set)
    timer.start()
    assert cancel_idle_timers() >= 1
    timer.join(timeout=10)
    assert not timer.is_alive() and not fired.is_set()
    assert cancel_idle_timers() == 0


def test_snakemake_leaves_a_timer_that_onsuccess_cancels(tmp_path):
    # the premise of the Snakefile's onsuccess/onerror handlers: after a run that executed a job, this
    # Snakemake still has a rate-limit timer waiting (if it no longer does, the handlers can go)
    (tmp_path / "Snakefile").write_text(
        "from baseforge.run import cancel_idle_timers\n"
        "rule all:\n    output: 'done'\n    shell: 'touch {output}'\n"
        "onsuccess:\n    print(f'cancelled {cancel_idle_timers()} timers')\n"
    )
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1"], cwd=tmp_path,
                          capture_output=True, text=True, check=True)
    cancelled = [int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("cancelled ")]
    assert cancelled and cancelled[0] >= 1, proc.stdout + proc.stderr
    assert (tmp_path / "done").exists()
