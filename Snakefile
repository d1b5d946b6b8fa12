# baseforge: declarative, reproducible Linux base images and the application images built on them.
# The matrix lives in config/config.yaml; the rules are in rules/, the logic in the baseforge package.
from snakemake.utils import min_version

from baseforge.run import cancel_idle_timers

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/bootstrap.smk"
include: "rules/image.smk"
include: "rules/app.smk"
include: "rules/smoketest.smk"
include: "rules/publish.smk"


rule all:
    input:
        "results/images.tsv",
        push_targets(),
    default_target: True
    localrule: True


# the run is over: do not wait for the scheduler's rate-limit timers before exiting (baseforge.run)
onsuccess:
    cancel_idle_timers()


onerror:
    cancel_idle_timers()
