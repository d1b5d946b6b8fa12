# Run every image with no network and check what it says; then the summary table.


rule smoketest:
    input:
        record=paths.cell(paths.ENGINE),
    output:
        report=report(
            paths.cell(paths.SMOKE),
            caption="report/smoketest.rst",
            category="1. Images",
            labels=lambda w: bfreport.image_labels(cell_path(w)),
        ),
    log:
        "logs/smoketest/{image}/{release}/{variant}/{arch}.log",
    # a report is a function of the image ID (in the record), the checks and the code: a clone that loads
    # the same image reuses its PASS from the between-workflow cache (leave smoketest out of --cache to rerun)
    cache: "omit-software"
    localrule: ENGINE_LOCAL
    params:
        plan=lambda w: image_plan(w).to_dict(),
        code=code_hash("smoketest"),
    script:
        "../scripts/smoketest.py"


rule smoketest_app:
    input:
        record=paths.app(paths.APP_ENGINE),
    output:
        report=report(
            paths.app(paths.APP_SMOKE),
            caption="report/smoketest.rst",
            category="1. Images",
            labels=lambda w: bfreport.image_labels(f"apps/{w.app}"),
        ),
    log:
        "logs/smoketest/apps/{app}.log",
    cache: "omit-software"
    localrule: ENGINE_LOCAL
    params:
        plan=lambda w: APPS[w.app].to_dict(),
        code=code_hash("smoketest"),
    script:
        "../scripts/smoketest.py"


rule summary:
    input:
        smoke=smoke_targets(),
        sbom=[paths.cell(paths.SBOM, p) for p in IMAGES],
        # every file a row reads (records, rootfs info, the OCI archives' info: row() checks the IDs)
        rows=[f for row in summary_rows() for f in (row["record"], row["rootfs"], row["oci"]) if f],
    output:
        tsv=paths.SUMMARY_TSV,
        json=paths.SUMMARY_JSON,
    log:
        "logs/summary.log",
    localrule: ENGINE_LOCAL
    params:
        rows=summary_rows(),
    script:
        "../scripts/summary.py"
