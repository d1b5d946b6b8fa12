# Run every image with no network and check what it says; then the summary table.


rule smoketest:
    input:
        record="build/engine/{image}/{release}/{variant}/{arch}.json",
    output:
        report=report(
            "build/smoke/{image}/{release}/{variant}/{arch}.ok",
            caption="report/smoketest.rst",
            category="1. Images",
            labels=lambda w: bfreport.image_labels(cell_path(w)),
        ),
    params:
        plan=lambda w: image_plan(w).to_dict(),
        code=bfconfig.code_hash("smoketest.py", "engine.py"),
    # a report is a function of the image ID (in the record), the checks and the code: a clone that loads
    # the same image reuses its PASS from the between-workflow cache (leave smoketest out of --cache to rerun)
    cache: "omit-software"
    log:
        "logs/smoketest/{image}/{release}/{variant}/{arch}.log",
    script:
        "../scripts/smoketest.py"


rule smoketest_app:
    input:
        record="build/engine/apps/{app}.json",
    output:
        report=report(
            "build/smoke/apps/{app}.ok",
            caption="report/smoketest.rst",
            category="1. Images",
            labels=lambda w: bfreport.image_labels(f"apps/{w.app}"),
        ),
    params:
        plan=lambda w: APPS[w.app].to_dict(),
        code=bfconfig.code_hash("smoketest.py", "engine.py"),
    cache: "omit-software"
    log:
        "logs/smoketest/apps/{app}.log",
    script:
        "../scripts/smoketest.py"


rule summary:
    input:
        smoke=smoke_targets(),
        rootfs=[f"build/rootfs/{p}/rootfs.json" for p in IMAGES],
        sbom=[f"build/rootfs/{p}/sbom.spdx.json" for p in IMAGES],
        records=[f"build/engine/{p}.json" for p in IMAGES] + [f"build/engine/apps/{a}.json" for a in APPS],
        # the OCI archives on disk (the engine's images were loaded from rootfs.tar): row() checks the IDs
        oci=[f"build/oci/{p}.json" for p in IMAGES],
    output:
        tsv="results/images.tsv",
        json="results/images.json",
    log:
        "logs/summary.log",
    script:
        "../scripts/summary.py"
