# baseforge: declarative, reproducible Linux base images and the application images built on them.
# The matrix lives in config/config.yaml; the rules are in rules/, the logic in the baseforge package.
from snakemake.common import NOTHING_TO_BE_DONE_MSG
from snakemake.logging import logger
from snakemake.utils import min_version

from baseforge import configfile as bfconfigfile
from baseforge import console
from baseforge.faults import summary as failure_summary
from baseforge.run import cancel_idle_timers, keep_interrupts

min_version("9.0")

# `--configfile mine.yaml` is the whole matrix: the shipped example is read only without one; each file is
# read strictly first (a key given twice, or a syntax error, is named by file and line, before any job)
bfconfigfile.check_or_exit(bfconfigfile.workflow_configfiles(workflow.overwrite_configfiles), workflow.is_main_process)
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "rules/report/workflow.rst"


include: "rules/common.smk"
include: "rules/bootstrap.smk"
include: "rules/image.smk"
include: "rules/app.smk"
include: "rules/smoketest.smk"
include: "rules/publish.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        "results/images.tsv",
        report_targets(),
        push_targets(),
    localrule: True


# a run ends with the image table (results/images.json), a run with nothing to do too (baseforge.console)
# Ctrl-C stops the run whenever it comes (baseforge.run.keep_interrupts)
if workflow.is_main_process:
    console.on_nothing_to_do(logger, NOTHING_TO_BE_DONE_MSG)
    keep_interrupts()


# the run is over: do not wait for the scheduler's rate-limit timers before exiting (baseforge.run)
onsuccess:
    cancel_idle_timers()
    console.show_images(logger)


onerror:
    # every failed job in one line each (its console paragraph scrolled by; its log is gone on a rerun)
    sys.stderr.write(failure_summary(RUN_START))
    cancel_idle_timers()
