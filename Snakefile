# baseforge: declarative, reproducible Linux base images and the application images built on them.
# The matrix lives in config/config.yaml; the rules are in rules/, the logic in the baseforge package.
from snakemake.common import NOTHING_TO_BE_DONE_MSG
from snakemake.logging import logger
from snakemake.utils import min_version

from baseforge import console
from baseforge.run import cancel_idle_timers

min_version("9.0")


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
    input:
        "results/images.tsv",
        report_targets(),
        push_targets(),
    default_target: True
    localrule: True


# a run ends with the image table (results/images.json), a run with nothing to do too (baseforge.console)
if workflow.is_main_process:
    console.on_nothing_to_do(logger, NOTHING_TO_BE_DONE_MSG)


# the run is over: do not wait for the scheduler's rate-limit timers before exiting (baseforge.run)
onsuccess:
    cancel_idle_timers()
    console.show_images(logger)


onerror:
    cancel_idle_timers()
