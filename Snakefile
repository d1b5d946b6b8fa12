# baseforge: declarative, reproducible Linux base images and the application images built on them.
# The matrix lives in config/config.yaml; the rules are in rules/, the logic in the baseforge package.
from snakemake.utils import min_version

from baseforge import configfile as bfconfigfile
from baseforge.faults import summary as failure_summary
from baseforge.run import cancel_idle_timers

min_version("9.0")

# `--configfile mine.yaml` is the whole matrix: the shipped example is read only without one; each file is
# read strictly first (a key given twice, or a syntax error, is named by file and line, before any job)
bfconfigfile.check_or_exit(bfconfigfile.workflow_configfiles(workflow.overwrite_configfiles), workflow.is_main_process)
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/bootstrap.smk"
include: "rules/image.smk"
include: "rules/app.smk"
include: "rules/smoketest.smk"
include: "rules/publish.smk"
include: "rules/cluster.smk"


rule all:
    input:
        "results/images.tsv",
        push_targets(),
    default_target: True


# the run is over: do not wait for the scheduler's rate-limit timers before exiting (baseforge.run)
onsuccess:
    cancel_idle_timers()


onerror:
    # every failed job in one line each (its console paragraph scrolled by; its log is gone on a rerun)
    sys.stderr.write(failure_summary(RUN_START))
    cancel_idle_timers()
